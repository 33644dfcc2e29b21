-- Typical distance and duration of each pickup -> dropoff zone pair at each pickup hour in each aligned file month
-- (cleaned trips of every service): the monthly building block of zone_pair_hourly_typicals, incremental by month.
-- Read from the stored trips (int_trips_kept), not recomputed from raw through the cleaning views.
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
with

aligned_trips as (

    select
        *,
        {{ hour_of('pickup_at') }} as pickup_hour

    from {{ ref('int_trips_kept') }}
    where {{ trip_months_filter() }}

),

final as (

    select
        {{ cast_as('min(source_month)', 'text') }} as source_month,
        {{ cast_as('min(pickup_zone_id)', 'integer') }} as pickup_zone_id,
        {{ cast_as('min(dropoff_zone_id)', 'integer') }} as dropoff_zone_id,
        {{ cast_as('min(pickup_hour)', 'integer') }} as pickup_hour,
        {{ cast_as('count(*)', 'bigint') }} as zone_pair_trips,
        {{ cast_as(median_cont('trip_miles'), 'double precision') }} as median_trip_miles,
        {{ cast_as(median_cont('duration_minutes'), 'double precision') }} as median_duration_minutes

    from aligned_trips
    -- one 64-bit key for month, zone pair and hour (macros/dialect.sql, trip_group_key): the sort behind these medians
    -- compares one integer per pair of trips
    group by {{ trip_group_key('pickup_zone_id', 'dropoff_zone_id', 'pickup_hour', 'source_month') }}

)

select * from final
