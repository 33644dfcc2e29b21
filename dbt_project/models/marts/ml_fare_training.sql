-- The only trip table ml/ reads: taxi and Uber trips of every clean month with exactly the request-time features
-- the models read (time of the pickup, the two zones and what dim_zone_pairs knows about the route). Every column is
-- computed from the row itself and month-independent lookups, so a month's rows never change when other months load.
-- The trips are the stored ones (int_trips_kept, the rows of fct_trips) and the route, the zones' boroughs and airport
-- flags included, comes from dim_zone_pairs in one join: through fct_trips every trip took two more hash lookups
-- (its zones), and every reader of this view pays per trip (the gate, the training sample, the rows test).
-- trip_miles, duration_minutes and meter_fare are what happened (target side and diagnostics), never model inputs;
-- zone-pair typicals are not here: they come from the training window only (zone_pair_hourly_typicals).
{%- set services = var('training_services') %}
with

trips as (

    select * from {{ ref('int_trips_kept') }}

),

zone_pairs as (

    select * from {{ ref('dim_zone_pairs') }}

),

tariffs as (

    select * from {{ ref('taxi_tariff_periods') }}

),

training_trips as (

    select
        *,
        {{ pickup_calendar_columns('pickup_at') }}

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
        {{ cast_as('zone_pairs.pickup_borough', 'text') }} as pickup_borough,
        {{ cast_as('zone_pairs.dropoff_borough', 'text') }} as dropoff_borough,
        {{ cast_as('training_trips.pickup_hour', 'integer') }} as pickup_hour,
        {{ cast_as('training_trips.pickup_dow', 'integer') }} as pickup_dow,
        {{ cast_as('training_trips.is_weekend', 'boolean') }} as is_weekend,
        {{ cast_as('training_trips.pickup_month', 'integer') }} as pickup_month,
        {{ cast_as('zone_pairs.is_airport_pickup', 'boolean') }} as is_airport_pickup,
        {{ cast_as('zone_pairs.is_airport_dropoff', 'boolean') }} as is_airport_dropoff,
        {{ cast_as('zone_pairs.is_same_zone', 'boolean') }} as is_same_zone,
        {{ cast_as('zone_pairs.centroid_distance_miles', 'double precision') }} as centroid_distance_miles,
        {{ cast_as('zone_pairs.is_jfk_manhattan', 'boolean') }} as is_jfk_manhattan,
        {{ cast_as('zone_pairs.is_newark_dropoff', 'boolean') }} as is_newark_dropoff,
        {{ cast_as('zone_pairs.is_laguardia_trip', 'boolean') }} as is_laguardia_trip,
        {{ cast_as('training_trips.trip_miles', 'double precision') }} as trip_miles,
        {{ cast_as('training_trips.duration_minutes', 'double precision') }} as duration_minutes,
        -- the tariff in force at pickup: read per row only by a reader that selects meter_fare (period_value)
        {%- set meter = taxi_meter_fare('tariffs', 'zone_pairs', 'training_trips.trip_miles', 'training_trips.duration_minutes',
                                        'training_trips.pickup_hour', 'training_trips.pickup_dow') %}
        {{ period_value(cast_as('round(' ~ double_as_numeric(meter) ~ ', 2)', 'double precision'),
                        'tariffs', 'training_trips.pickup_at') }} as meter_fare,
        {{ cast_as('training_trips.rider_fare', 'double precision') }} as rider_fare

    from training_trips
    -- on the pair's one integer key (macros/dialect.sql, zone_pair_key): a hash join, not a sort of every trip
    inner join zone_pairs
        on {{ zone_pair_key('training_trips.pickup_zone_id', 'training_trips.dropoff_zone_id') }}
        = zone_pairs.zone_pair_key
    {{ period_join('tariffs', 'training_trips.pickup_at') }}

)

select * from final
