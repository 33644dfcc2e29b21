-- The trips that pass every cleaning rule.
with

flagged as (

    select * from {{ ref('int_trips_flagged') }}

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
        duration_minutes,
        rider_fare,
        tip_amount,
        speed_mph,
        fare_per_mile

    from flagged
    where removal_rule is null

)

select * from final
