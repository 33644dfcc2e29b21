-- Both services in one comparable shape: when, where, how far, how long and what the rider pays before tip.
{%- set yellow_rider_fare = round_cents('(total_amount - coalesce(tip_amount, 0))') %}
{%- set hvfhv_rider_fare = round_cents('(
    base_passenger_fare_amount
    + coalesce(tolls_amount, 0)
    + coalesce(black_car_fund_amount, 0)
    + coalesce(sales_tax_amount, 0)
    + coalesce(congestion_surcharge_amount, 0)
    + coalesce(airport_fee_amount, 0)
    + coalesce(cbd_congestion_fee_amount, 0)
)') %}
with

yellow_trips as (

    select * from {{ ref('stg_tlc__yellow_trips') }}

),

fhvhv_trips as (

    select * from {{ ref('stg_tlc__fhvhv_trips') }}

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
        -- what the rider pays before tip: total_amount already holds every fee the rider is charged (airport and
        -- CBD fees included), plus the tip
        {{ yellow_rider_fare }} as rider_fare,
        tip_amount,
        rate_code_id,
        payment_type,
        false as is_shared,
        false as is_for_access_a_ride

    from yellow_trips

),

fhvhv_shaped as (

    select
        trip_id,
        -- the service key, lowercase, straight from the license (macros/outlier_rules.sql, hvfhs_company)
        {{ hvfhs_company('license_num', lowercase=true) }} as service,
        source_month,
        pickup_at,
        dropoff_at,
        pickup_zone_id,
        dropoff_zone_id,
        trip_miles,
        -- the base fare and every charge the rider pays, before tip
        {{ hvfhv_rider_fare }} as rider_fare,
        tip_amount,
        cast(null as integer) as rate_code_id,
        cast(null as integer) as payment_type,
        coalesce(is_shared_request or is_shared_match, false) as is_shared,
        coalesce(is_access_a_ride, false) as is_for_access_a_ride

    from fhvhv_trips

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
