-- What a trip from one zone to another costs, by file month, pickup hour and service: medians and percentiles of the
-- rider fare. Incremental by month (a month's percentiles never change when another month arrives).
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
with

trips as (

    -- the stored trips themselves: the fct_trips view's zone names and calendar parts would only cost time here
    select
        *,
        {{ hour_of('pickup_at') }} as pickup_hour

    from {{ ref('int_trips_kept') }}
    where {{ trip_months_filter() }}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

summarised as (

    select
        min(source_month) as source_month,
        min(service) as service,
        min(pickup_zone_id) as pickup_zone_id,
        min(dropoff_zone_id) as dropoff_zone_id,
        min(pickup_hour) as pickup_hour,
        count(*) as trips,
        -- one sort per group for all five fare percentiles
        {{ percentiles_cont('rider_fare', [0.1, 0.25, 0.5, 0.75, 0.9]) }} as rider_fare_percentiles,
        -- in whole cents (fares have two decimals): an exact sum, so the mean does not depend on the order the trips
        -- come in (a float sum's last bits do, and its rounding to cents then flips on a few groups of a real month)
        sum(round(rider_fare * 100)) / ({{ cast_as('100', 'double precision') }} * count(*)) as mean_rider_fare,
        {{ median_cont('trip_miles') }} as median_trip_miles,
        {{ median_cont('duration_minutes') }} as median_duration_minutes,
        max(pickup_at) as last_pickup_at

    from trips
    -- one 64-bit key for month, service, zone pair and hour (macros/dialect.sql, trip_group_key): PostgreSQL sorts the
    -- trips for these groups, and a sort on the one integer is much faster than on the five columns
    group by {{ trip_group_key('pickup_zone_id', 'dropoff_zone_id', 'pickup_hour', 'source_month', 'service') }}

),

final as (

    select
        {{ cast_as('summarised.source_month', 'text') }} as source_month,
        {{ cast_as('summarised.service', 'text') }} as service,
        {{ cast_as('summarised.pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('pickup_zones.zone_name', 'text') }} as pickup_zone_name,
        {{ cast_as('summarised.dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('dropoff_zones.zone_name', 'text') }} as dropoff_zone_name,
        {{ cast_as('summarised.pickup_hour', 'integer') }} as pickup_hour,
        {{ cast_as('summarised.trips', 'bigint') }} as trips,
        {{ round_double(array_element('summarised.rider_fare_percentiles', 1), 2) }} as p10_rider_fare,
        {{ round_double(array_element('summarised.rider_fare_percentiles', 2), 2) }} as p25_rider_fare,
        {{ round_double(array_element('summarised.rider_fare_percentiles', 3), 2) }} as median_rider_fare,
        {{ round_double(array_element('summarised.rider_fare_percentiles', 4), 2) }} as p75_rider_fare,
        {{ round_double(array_element('summarised.rider_fare_percentiles', 5), 2) }} as p90_rider_fare,
        {{ round_double('summarised.mean_rider_fare', 2) }} as mean_rider_fare,
        {{ cast_as('summarised.median_trip_miles', 'double precision') }} as median_trip_miles,
        {{ cast_as('summarised.median_duration_minutes', 'double precision') }} as median_duration_minutes,
        {{ cast_as('summarised.last_pickup_at', 'timestamp') }} as last_pickup_at

    from summarised
    inner join zones as pickup_zones
        on summarised.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on summarised.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
