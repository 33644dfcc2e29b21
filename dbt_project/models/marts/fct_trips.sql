-- The cleaned trips of the aligned months, every service, with the features analysts slice by.
-- Incremental by file month: a new or reloaded month replaces only its own rows.
with

aligned_trips as (

    select * from {{ ref('int_trips_aligned') }}
    where {{ trip_months_filter() }}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

final as (

    select
        aligned_trips.trip_id::text as trip_id,
        aligned_trips.service::text as service,
        aligned_trips.source_month::text as source_month,
        aligned_trips.pickup_at::timestamp as pickup_at,
        aligned_trips.dropoff_at::timestamp as dropoff_at,
        aligned_trips.pickup_zone_id::integer as pickup_zone_id,
        aligned_trips.dropoff_zone_id::integer as dropoff_zone_id,
        pickup_zones.borough::text as pickup_borough,
        dropoff_zones.borough::text as dropoff_borough,
        (pickup_zones.borough || ' -> ' || dropoff_zones.borough)::text as borough_pair,
        extract(hour from aligned_trips.pickup_at)::integer as pickup_hour,
        (extract(isodow from aligned_trips.pickup_at) - 1)::integer as pickup_dow,
        extract(isodow from aligned_trips.pickup_at) >= 6 as is_weekend,
        extract(month from aligned_trips.pickup_at)::integer as pickup_month,
        aligned_trips.pickup_at::date as pickup_date,
        pickup_zones.is_airport as is_airport_pickup,
        dropoff_zones.is_airport as is_airport_dropoff,
        aligned_trips.pickup_zone_id = aligned_trips.dropoff_zone_id as is_same_zone,
        aligned_trips.trip_miles::double precision as trip_miles,
        aligned_trips.duration_minutes::double precision as duration_minutes,
        aligned_trips.speed_mph::double precision as speed_mph,
        aligned_trips.rider_fare::double precision as rider_fare,
        aligned_trips.fare_per_mile::double precision as fare_per_mile,
        aligned_trips.tip_amount::double precision as tip_amount

    from aligned_trips
    inner join zones as pickup_zones
        on aligned_trips.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on aligned_trips.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
