-- High-volume for-hire trips (Uber, Lyft, Via, Juno), renamed and cast; trip time converted to minutes.
with

source as (

    select * from {{ source('tlc', 'fhvhv_trips') }}

),

renamed as (

    select
        'fhvhv-' || _dlt_id as trip_id,
        hvfhs_license_num as license_num,
        {{ hvfhs_company('hvfhs_license_num') }} as service,
        dispatching_base_num,
        originating_base_num,
        {{ cast_as('request_datetime', 'timestamp') }} as requested_at,
        {{ cast_as('on_scene_datetime', 'timestamp') }} as on_scene_at,
        {{ cast_as('pickup_datetime', 'timestamp') }} as pickup_at,
        {{ cast_as('dropoff_datetime', 'timestamp') }} as dropoff_at,
        {{ cast_as('pu_location_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('do_location_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('trip_miles', 'double precision') }} as trip_miles,
        trip_time / {{ cast_as('60.0', 'double precision') }} as trip_time_minutes,
        {{ cast_as('base_passenger_fare', 'double precision') }} as base_passenger_fare_amount,
        {{ cast_as('tolls', 'double precision') }} as tolls_amount,
        {{ cast_as('bcf', 'double precision') }} as black_car_fund_amount,
        {{ cast_as('sales_tax', 'double precision') }} as sales_tax_amount,
        {{ cast_as('congestion_surcharge', 'double precision') }} as congestion_surcharge_amount,
        {{ cast_as('airport_fee', 'double precision') }} as airport_fee_amount,
        {{ cast_as('cbd_congestion_fee', 'double precision') }} as cbd_congestion_fee_amount,
        {{ cast_as('tips', 'double precision') }} as tip_amount,
        {{ cast_as('driver_pay', 'double precision') }} as driver_pay_amount,
        (shared_request_flag = 'Y') as is_shared_request,
        (shared_match_flag = 'Y') as is_shared_match,
        (access_a_ride_flag = 'Y') as is_access_a_ride,
        (wav_request_flag = 'Y') as is_wav_request,
        (wav_match_flag = 'Y') as is_wav_match,
        source_file,
        source_month,
        _dlt_load_id as load_id,
        {{ epoch_to_timestamp('_dlt_load_id') }} as loaded_at

    from source

)

select * from renamed
