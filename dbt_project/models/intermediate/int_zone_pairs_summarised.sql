-- Typical distance and duration of each pickup -> dropoff zone pair over the aligned, cleaned trips of every service:
-- what a quote can know about a trip before it happens.
with

aligned_trips as (

    select * from {{ ref('int_trips_aligned') }}

),

final as (

    select
        pickup_zone_id,
        dropoff_zone_id,
        count(*) as zone_pair_trips,
        percentile_cont(0.5) within group (order by trip_miles) as typical_trip_miles,
        percentile_cont(0.5) within group (order by duration_minutes) as typical_duration_minutes

    from aligned_trips
    group by pickup_zone_id, dropoff_zone_id

)

select * from final
