-- The one stored copy of the trips that reach the marts: the cleaned trips of every month whose two zones are known
-- (each service learns from all its clean months; alignment only decides where the two are compared), as narrow as
-- the facts allow. Everything derivable (boroughs, calendar parts, speed, fare per mile) is computed by the fct_trips
-- view on top, so a real month (about 20M kept trips) costs ~120 bytes a row here instead of ~210 in a wide table. Columns are ordered 8-byte, 4-byte, then text, so PostgreSQL pads nothing between them.
-- By file month: a new or reloaded month replaces only its own rows, written once (macros/month_partitions.sql:
-- PostgreSQL keeps a partition per month; Spark, dbt's incremental with insert_overwrite; macros/trip_months.sql plans
-- the months).
{{ config(materialized=fares_trips_materialization(), incremental_strategy=fares_month_strategy(),
          partition_by=fares_month_partition_by()) }}
with

cleaned_trips as (

    select * from {{ ref('int_trips_cleaned') }}
    where {{ trip_months_filter() }}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

final as (

    select
        {{ cast_as('cleaned_trips.pickup_at', 'timestamp') }} as pickup_at,
        {{ cast_as('cleaned_trips.dropoff_at', 'timestamp') }} as dropoff_at,
        {{ cast_as('cleaned_trips.trip_miles', 'double precision') }} as trip_miles,
        {{ cast_as('cleaned_trips.duration_minutes', 'double precision') }} as duration_minutes,
        {{ cast_as('cleaned_trips.rider_fare', 'double precision') }} as rider_fare,
        {{ cast_as('cleaned_trips.tip_amount', 'double precision') }} as tip_amount,
        {{ cast_as('cleaned_trips.pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('cleaned_trips.dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('cleaned_trips.trip_id', 'text') }} as trip_id,
        {{ cast_as('cleaned_trips.service', 'text') }} as service,
        {{ cast_as('cleaned_trips.source_month', 'text') }} as source_month

    from cleaned_trips
    inner join zones as pickup_zones
        on cleaned_trips.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on cleaned_trips.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
