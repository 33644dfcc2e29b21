-- Yellow-taxi trips, renamed and cast; one row per raw row, nothing dropped.
with

source as (

    select * from {{ source('tlc', 'yellow_trips') }}

),

renamed as (

    select
        'yellow-' || _dlt_id as trip_id,
        {{ cast_as('vendor_id', 'integer') }} as vendor_id,
        {{ cast_as('tpep_pickup_datetime', 'timestamp') }} as pickup_at,
        {{ cast_as('tpep_dropoff_datetime', 'timestamp') }} as dropoff_at,
        {{ cast_as('passenger_count', 'integer') }} as passenger_count,
        {{ cast_as('trip_distance', 'double precision') }} as trip_miles,
        {{ cast_as('ratecode_id', 'integer') }} as rate_code_id,
        (store_and_fwd_flag = 'Y') as is_store_and_forward,
        {{ cast_as('pu_location_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('do_location_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('payment_type', 'integer') }} as payment_type,
        {{ cast_as('fare_amount', 'double precision') }} as fare_amount,
        {{ cast_as('extra', 'double precision') }} as extra_amount,
        {{ cast_as('mta_tax', 'double precision') }} as mta_tax_amount,
        {{ cast_as('tip_amount', 'double precision') }} as tip_amount,
        {{ cast_as('tolls_amount', 'double precision') }} as tolls_amount,
        {{ cast_as('improvement_surcharge', 'double precision') }} as improvement_surcharge_amount,
        {{ cast_as('total_amount', 'double precision') }} as total_amount,
        {{ cast_as('congestion_surcharge', 'double precision') }} as congestion_surcharge_amount,
        {{ cast_as('airport_fee', 'double precision') }} as airport_fee_amount,
        {{ cast_as('cbd_congestion_fee', 'double precision') }} as cbd_congestion_fee_amount,
        source_file,
        source_month,
        _dlt_load_id as load_id,
        {{ epoch_to_timestamp('_dlt_load_id') }} as loaded_at

    from source

)

select * from renamed
