-- Typical distance and duration of each pickup -> dropoff zone pair over the newest aligned months
-- (var zone_pair_months): what a quote can know about a trip before it happens. The typical value is the
-- trip-weighted mean of the monthly medians, so a night with one new month reads month-level rows only.
with

pair_months as (

    select * from {{ ref('int_zone_pair_months') }}

),

window_months as (

    select distinct source_month
    from pair_months
    order by source_month desc
    limit {{ var('zone_pair_months') }}

),

final as (

    select
        pair_months.pickup_zone_id,
        pair_months.dropoff_zone_id,
        {{ cast_as('sum(pair_months.zone_pair_trips)', 'bigint') }} as zone_pair_trips,
        {{ cast_as('(sum(pair_months.median_trip_miles * pair_months.zone_pair_trips)
            / sum(pair_months.zone_pair_trips))', 'double precision') }} as typical_trip_miles,
        {{ cast_as('(sum(pair_months.median_duration_minutes * pair_months.zone_pair_trips)
            / sum(pair_months.zone_pair_trips))', 'double precision') }} as typical_duration_minutes

    from pair_months
    inner join window_months
        on pair_months.source_month = window_months.source_month
    group by pair_months.pickup_zone_id, pair_months.dropoff_zone_id

)

select * from final
