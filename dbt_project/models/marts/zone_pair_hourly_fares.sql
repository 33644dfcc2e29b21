-- What a trip from one zone to another costs, by file month, pickup hour and service: medians and percentiles of the
-- rider fare. Incremental by month (a month's percentiles never change when another month arrives).
with

trips as (

    -- the stored trips themselves: the fct_trips view's zone names and calendar parts would only cost time here
    select
        *,
        extract(hour from pickup_at)::integer as pickup_hour

    from {{ ref('int_trips_kept') }}
    where {{ trip_months_filter() }}

),

zones as (

    select * from {{ ref('dim_zones') }}

),

summarised as (

    select
        source_month,
        service,
        pickup_zone_id,
        dropoff_zone_id,
        pickup_hour,
        count(*) as trips,
        -- one sort per group for all five fare percentiles
        percentile_cont(array[0.1, 0.25, 0.5, 0.75, 0.9]) within group (order by rider_fare) as rider_fare_percentiles,
        avg(rider_fare) as mean_rider_fare,
        percentile_cont(0.5) within group (order by trip_miles) as median_trip_miles,
        percentile_cont(0.5) within group (order by duration_minutes) as median_duration_minutes

    from trips
    group by source_month, service, pickup_zone_id, dropoff_zone_id, pickup_hour

),

final as (

    select
        summarised.source_month::text as source_month,
        summarised.service::text as service,
        summarised.pickup_zone_id::integer as pickup_zone_id,
        pickup_zones.zone_name::text as pickup_zone_name,
        summarised.dropoff_zone_id::integer as dropoff_zone_id,
        dropoff_zones.zone_name::text as dropoff_zone_name,
        summarised.pickup_hour::integer as pickup_hour,
        summarised.trips::bigint as trips,
        round(summarised.rider_fare_percentiles[1]::numeric, 2)::double precision as p10_rider_fare,
        round(summarised.rider_fare_percentiles[2]::numeric, 2)::double precision as p25_rider_fare,
        round(summarised.rider_fare_percentiles[3]::numeric, 2)::double precision as median_rider_fare,
        round(summarised.rider_fare_percentiles[4]::numeric, 2)::double precision as p75_rider_fare,
        round(summarised.rider_fare_percentiles[5]::numeric, 2)::double precision as p90_rider_fare,
        round(summarised.mean_rider_fare::numeric, 2)::double precision as mean_rider_fare,
        summarised.median_trip_miles::double precision as median_trip_miles,
        summarised.median_duration_minutes::double precision as median_duration_minutes

    from summarised
    inner join zones as pickup_zones
        on summarised.pickup_zone_id = pickup_zones.zone_id
    inner join zones as dropoff_zones
        on summarised.dropoff_zone_id = dropoff_zones.zone_id

)

select * from final
