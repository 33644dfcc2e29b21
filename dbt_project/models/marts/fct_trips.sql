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
        {{ cast_as('aligned_trips.trip_id', 'text') }} as trip_id,
        {{ cast_as('aligned_trips.service', 'text') }} as service,
        {{ cast_as('aligned_trips.source_month', 'text') }} as source_month,
        {{ cast_as('aligned_trips.pickup_at', 'timestamp') }} as pickup_at,
        {{ cast_as('aligned_trips.dropoff_at', 'timestamp') }} as dropoff_at,
        {{ cast_as('aligned_trips.pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('aligned_trips.dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('pickup_zones.borough', 'text') }} as pickup_borough,
        {{ cast_as('dropoff_zones.borough', 'text') }} as dropoff_borough,
        {{ cast_as("(pickup_zones.borough || ' -> ' || dropoff_zones.borough)", 'text') }} as borough_pair,
        {{ cast_as('extract(hour from aligned_trips.pickup_at)', 'integer') }} as pickup_hour,
        {{ cast_as('(' ~ iso_day_of_week('aligned_trips.pickup_at') ~ ' - 1)', 'integer') }} as pickup_dow,
        {{ iso_day_of_week('aligned_trips.pickup_at') }} >= 6 as is_weekend,
        {{ cast_as('extract(month from aligned_trips.pickup_at)', 'integer') }} as pickup_month,
        {{ cast_as('aligned_trips.pickup_at', 'date') }} as pickup_date,
        pickup_zones.is_airport as is_airport_pickup,
        dropoff_zones.is_airport as is_airport_dropoff,
        aligned_trips.pickup_zone_id = aligned_trips.dropoff_zone_id as is_same_zone,
        {{ cast_as('aligned_trips.trip_miles', 'double precision') }} as trip_miles,
        {{ cast_as('aligned_trips.duration_minutes', 'double precision') }} as duration_minutes,
        {{ cast_as('aligned_trips.speed_mph', 'double precision') }} as speed_mph,
        {{ cast_as('aligned_trips.rider_fare', 'double precision') }} as rider_fare,
        {{ cast_as('aligned_trips.fare_per_mile', 'double precision') }} as fare_per_mile,
        {{ cast_as('aligned_trips.tip_amount', 'double precision') }} as tip_amount

    from aligned_trips
    inner join zones as pickup_zones
        on aligned_trips.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on aligned_trips.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
