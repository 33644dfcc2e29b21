-- Yellow-taxi trips, renamed and cast; one row per raw row, nothing dropped.
with

source as (

    select * from {{ source('tlc', 'yellow_trips') }}

),

renamed as (

    select
        'yellow-' || _dlt_id as trip_id,
        vendor_id::integer as vendor_id,
        tpep_pickup_datetime::timestamp as pickup_at,
        tpep_dropoff_datetime::timestamp as dropoff_at,
        passenger_count::integer as passenger_count,
        trip_distance::double precision as trip_miles,
        ratecode_id::integer as rate_code_id,
        (store_and_fwd_flag = 'Y') as is_store_and_forward,
        pu_location_id::integer as pickup_zone_id,
        do_location_id::integer as dropoff_zone_id,
        payment_type::integer as payment_type,
        fare_amount::double precision as fare_amount,
        extra::double precision as extra_amount,
        mta_tax::double precision as mta_tax_amount,
        tip_amount::double precision as tip_amount,
        tolls_amount::double precision as tolls_amount,
        improvement_surcharge::double precision as improvement_surcharge_amount,
        total_amount::double precision as total_amount,
        congestion_surcharge::double precision as congestion_surcharge_amount,
        airport_fee::double precision as airport_fee_amount,
        cbd_congestion_fee::double precision as cbd_congestion_fee_amount,
        source_file,
        source_month,
        _dlt_load_id as load_id,
        to_timestamp(_dlt_load_id::double precision) as loaded_at

    from source

)

select * from renamed
