-- Typical distance and duration of each zone pair at each pickup hour, from the training window only: the months of
-- the newest `zone_pair_months` before the holdout's month (monthly medians from int_zone_pair_months, weighted by
-- trips), plus the holdout month's trips before ml_holdout_window.holdout_from. The lookup the fare models read for
-- a trip at training time and, carried in the model bundle, for a live request. The holdout month's trips are read
-- from the stored table (int_trips_kept), not the fct_trips view: its zones are known already, and the view's two
-- zone joins over a month of trips add nothing here (a real month, one core: 29.6 -> 23.7 s).
with

pair_months as (

    select * from {{ ref('int_zone_pair_months') }}

),

trips as (

    select
        *,
        {{ hour_of('pickup_at') }} as pickup_hour

    from {{ ref('int_trips_kept') }}

),

holdout_window as (

    select * from {{ ref('ml_holdout_window') }}

),

window_months as (

    select distinct pair_months.source_month

    from pair_months
    cross join holdout_window
    where pair_months.source_month < holdout_window.holdout_month
    order by pair_months.source_month desc
    limit {{ var('zone_pair_months') }}

),

whole_months as (

    select
        pair_months.pickup_zone_id,
        pair_months.dropoff_zone_id,
        pair_months.pickup_hour,
        pair_months.zone_pair_trips as trips,
        pair_months.median_trip_miles,
        pair_months.median_duration_minutes

    from pair_months
    inner join window_months
        on pair_months.source_month = window_months.source_month

),

holdout_month_before_it as (

    select
        min(trips.pickup_zone_id) as pickup_zone_id,
        min(trips.dropoff_zone_id) as dropoff_zone_id,
        min(trips.pickup_hour) as pickup_hour,
        count(*) as trips,
        {{ median_cont('trips.trip_miles') }} as median_trip_miles,
        {{ median_cont('trips.duration_minutes') }} as median_duration_minutes

    from trips
    -- the window's month and start as scalar subqueries, not a join to its one row: PostgreSQL then leaves every other
    -- month's partition of the stored trips unread (pruned when the scan starts), so this reads one month however
    -- many are loaded
    where trips.source_month = (select holdout_window.holdout_month from holdout_window)
        and trips.pickup_at < (select holdout_window.holdout_from from holdout_window)
    -- one integer key for zone pair and hour (macros/dialect.sql, trip_group_key): the sort behind these medians
    -- compares one integer per pair of trips
    group by {{ trip_group_key('trips.pickup_zone_id', 'trips.dropoff_zone_id', 'trips.pickup_hour') }}

),

blocks as (

    select * from whole_months
    union all
    select * from holdout_month_before_it

),

final as (

    select
        cast(pickup_zone_id as integer) as pickup_zone_id,
        cast(dropoff_zone_id as integer) as dropoff_zone_id,
        cast(pickup_hour as integer) as pickup_hour,
        cast(sum(trips) as bigint) as trips,
        cast(sum(median_trip_miles * trips) / sum(trips) as {{ sql_type('double precision') }}) as typical_trip_miles,
        cast(sum(median_duration_minutes * trips) / sum(trips) as {{ sql_type('double precision') }}) as typical_duration_minutes

    from blocks
    group by pickup_zone_id, dropoff_zone_id, pickup_hour

)

select * from final
