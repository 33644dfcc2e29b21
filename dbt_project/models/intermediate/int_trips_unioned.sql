-- Both services in one comparable shape: when, where, how far, how long and what the rider pays before tip.
{%- set yellow_rider_fare = round_double('(total_amount - coalesce(tip_amount, 0))', 2) %}
{%- set hvfhv_rider_fare = round_double('(
    base_passenger_fare_amount
    + coalesce(tolls_amount, 0)
    + coalesce(black_car_fund_amount, 0)
    + coalesce(sales_tax_amount, 0)
    + coalesce(congestion_surcharge_amount, 0)
    + coalesce(airport_fee_amount, 0)
    + coalesce(cbd_congestion_fee_amount, 0)
)', 2) %}
with

yellow_trips as (

    select * from {{ ref('stg_tlc__yellow_trips') }}

),

fhvhv_trips as (

    select * from {{ ref('stg_tlc__fhvhv_trips') }}

),

yellow_fares as (

    -- what the rider pays before tip, computed once per trip however often the rules above read it
    -- (macros/dialect.sql): total_amount already holds every fee the rider is charged (airport and CBD fees
    -- included), plus the tip
    select
        yellow_trips.*,
        {{ once_per_row_column('rider_fare', yellow_rider_fare) }} as rider_fare

    from yellow_trips
    {{ once_per_row_join('rider_fare', yellow_rider_fare) }}

),

fhvhv_fares as (

    -- the base fare and every charge the rider pays, before tip, computed once per trip
    select
        fhvhv_trips.*,
        {{ once_per_row_column('rider_fare', hvfhv_rider_fare) }} as rider_fare

    from fhvhv_trips
    {{ once_per_row_join('rider_fare', hvfhv_rider_fare) }}

),

yellow_shaped as (

    select
        trip_id,
        'taxi' as service,
        source_month,
        pickup_at,
        dropoff_at,
        pickup_zone_id,
        dropoff_zone_id,
        trip_miles,
        rider_fare,
        tip_amount,
        rate_code_id,
        payment_type,
        false as is_shared,
        false as is_for_access_a_ride

    from yellow_fares

),

fhvhv_shaped as (

    select
        trip_id,
        lower(service) as service,
        source_month,
        pickup_at,
        dropoff_at,
        pickup_zone_id,
        dropoff_zone_id,
        trip_miles,
        rider_fare,
        tip_amount,
        cast(null as integer) as rate_code_id,
        cast(null as integer) as payment_type,
        coalesce(is_shared_request or is_shared_match, false) as is_shared,
        coalesce(is_access_a_ride, false) as is_for_access_a_ride

    from fhvhv_fares

),

unioned as (

    select * from yellow_shaped
    union all
    select * from fhvhv_shaped

),

final as (

    select
        trip_id,
        service,
        source_month,
        pickup_at,
        dropoff_at,
        pickup_zone_id,
        dropoff_zone_id,
        trip_miles,
        {{ seconds_between('pickup_at', 'dropoff_at') }} / 60.0 as duration_minutes,
        rider_fare,
        tip_amount,
        rate_code_id,
        payment_type,
        is_shared,
        is_for_access_a_ride

    from unioned

)

select * from final
