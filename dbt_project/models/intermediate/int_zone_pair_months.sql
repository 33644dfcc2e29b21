-- Typical distance and duration of each pickup -> dropoff zone pair in each aligned file month (cleaned trips of
-- every service): the monthly building block of int_zone_pairs_summarised, incremental by month.
with

aligned_trips as (

    select * from {{ ref('int_trips_aligned') }}
    where {{ trip_months_filter() }}

),

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('count(*)', 'bigint') }} as zone_pair_trips,
        {{ cast_as('percentile_cont(0.5) within group (order by trip_miles)', 'double precision') }} as median_trip_miles,
        {{ cast_as('percentile_cont(0.5) within group (order by duration_minutes)', 'double precision') }} as median_duration_minutes

    from aligned_trips
    group by source_month, pickup_zone_id, dropoff_zone_id

)

select * from final
