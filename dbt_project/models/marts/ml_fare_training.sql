-- The only table ml/ reads: taxi and Uber trips of the aligned months with features known when a trip is requested.
-- trip_miles and duration_minutes are what happened (targets and diagnostics), never model inputs.
{%- set services = var('training_services') %}
with

trips as (

    select * from {{ ref('fct_trips') }}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

zone_pairs as (

    select * from {{ ref('int_zone_pairs_summarised') }}

),

training_trips as (

    select *

    from trips
    where service in ({% for service in services %}'{{ service }}'{{ ", " if not loop.last }}{% endfor %})

),

final as (

    select
        {{ cast_as('training_trips.trip_id', 'text') }} as trip_id,
        {{ cast_as('training_trips.service', 'text') }} as service,
        {{ cast_as('training_trips.pickup_at', 'timestamp') }} as pickup_at,
        {{ cast_as('training_trips.source_month', 'text') }} as source_month,
        {{ cast_as('training_trips.pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('training_trips.dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('training_trips.pickup_borough', 'text') }} as pickup_borough,
        {{ cast_as('training_trips.dropoff_borough', 'text') }} as dropoff_borough,
        {{ cast_as('training_trips.pickup_hour', 'integer') }} as pickup_hour,
        {{ cast_as('training_trips.pickup_dow', 'integer') }} as pickup_dow,
        {{ cast_as('training_trips.is_weekend', 'boolean') }} as is_weekend,
        {{ cast_as('training_trips.pickup_month', 'integer') }} as pickup_month,
        {{ cast_as('training_trips.is_airport_pickup', 'boolean') }} as is_airport_pickup,
        {{ cast_as('training_trips.is_airport_dropoff', 'boolean') }} as is_airport_dropoff,
        {{ cast_as('training_trips.is_same_zone', 'boolean') }} as is_same_zone,
        {{ round_double(haversine_miles('pickup_zones.centroid_lat', 'pickup_zones.centroid_lon',
                                        'dropoff_zones.centroid_lat', 'dropoff_zones.centroid_lon'), 3) }}
            as centroid_distance_miles,
        {{ cast_as('zone_pairs.typical_trip_miles', 'double precision') }} as typical_trip_miles,
        {{ cast_as('zone_pairs.typical_duration_minutes', 'double precision') }} as typical_duration_minutes,
        {{ cast_as('zone_pairs.zone_pair_trips', 'bigint') }} as zone_pair_trips,
        {{ cast_as('training_trips.trip_miles', 'double precision') }} as trip_miles,
        {{ cast_as('training_trips.duration_minutes', 'double precision') }} as duration_minutes,
        {{ cast_as('training_trips.rider_fare', 'double precision') }} as rider_fare

    from training_trips
    inner join zones as pickup_zones
        on training_trips.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on training_trips.dropoff_zone_id = dropoff_zones.zone_id
    left join zone_pairs
        on training_trips.pickup_zone_id = zone_pairs.pickup_zone_id
        and training_trips.dropoff_zone_id = zone_pairs.dropoff_zone_id

)

select * from final
