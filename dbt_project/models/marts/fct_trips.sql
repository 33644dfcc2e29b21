-- The cleaned trips of every month, every service, with the features analysts slice by. A view over the one
-- stored copy (int_trips_kept): the boroughs, calendar parts, speed and fare per mile are computed here, from the
-- row and dim_zones, so they are never stored a second time. A filter on source_month reaches the stored table's
-- month partitions, so a month's rows are read without scanning the others.
with

kept_trips as (

    select * from {{ ref('int_trips_kept') }}

),

final as (

    select
        kept_trips.trip_id,
        kept_trips.service,
        kept_trips.source_month,
        kept_trips.pickup_at,
        kept_trips.dropoff_at,
        kept_trips.pickup_zone_id,
        kept_trips.dropoff_zone_id,
        {{ cast_as('pickup_zones.borough', 'text') }} as pickup_borough,
        {{ cast_as('dropoff_zones.borough', 'text') }} as dropoff_borough,
        {{ cast_as("(pickup_zones.borough || ' -> ' || dropoff_zones.borough)", 'text') }} as borough_pair,
        {{ pickup_calendar_columns('kept_trips.pickup_at') }},
        {{ cast_as('kept_trips.pickup_at', 'date') }} as pickup_date,
        pickup_zones.is_airport as is_airport_pickup,
        dropoff_zones.is_airport as is_airport_dropoff,
        kept_trips.pickup_zone_id = kept_trips.dropoff_zone_id as is_same_zone,
        kept_trips.trip_miles,
        kept_trips.duration_minutes,
        -- the same definitions as int_trips_measured, where the cleaning rules read them
        {{ cast_as('(case when kept_trips.duration_minutes > 0
            then kept_trips.trip_miles / (kept_trips.duration_minutes / 60.0) end)', 'double precision') }} as speed_mph,
        kept_trips.rider_fare,
        {{ cast_as('(case when kept_trips.rider_fare > 0 and kept_trips.trip_miles > 0
            then kept_trips.rider_fare / kept_trips.trip_miles end)', 'double precision') }} as fare_per_mile,
        kept_trips.tip_amount

    -- dim_zones joined directly, not through a CTE: a CTE read twice is materialised, without statistics, and the
    -- planner then sorts a month of trips for a merge join instead of hashing 265 zones
    from kept_trips
    inner join {{ ref('dim_zones') }} as pickup_zones
        on kept_trips.pickup_zone_id = pickup_zones.zone_id
    inner join {{ ref('dim_zones') }} as dropoff_zones
        on kept_trips.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
