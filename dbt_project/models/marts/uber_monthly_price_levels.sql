-- The Uber price level of each month: the median price of one taxi-meter unit (1/5 mile, or a minute slower than
-- 12 mph) over the month's cleaned Uber trips before the holdout, for the newest `zone_pair_months` months with Uber
-- trips up to the holdout's. Uber fares are learned relative to it; a quote past the newest month uses the newest level and
-- says how stale it is. Read from the stored trips (int_trips_kept), not the fct_trips view, whose two zone joins add
-- nothing here (about 4 s of a real month's Uber trips for each month in the window).
with

trips as (

    select * from {{ ref('int_trips_kept') }}

),

holdout_window as (

    select * from {{ ref('ml_holdout_window') }}

),

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

),

window_months as (

    select months_aligned.source_month

    from months_aligned
    cross join holdout_window
    where months_aligned.uber_trips > 0 and months_aligned.source_month <= holdout_window.holdout_month
    order by months_aligned.source_month desc
    limit {{ var('zone_pair_months') }}

),

uber_trips as (

    select
        trips.source_month,
        trips.rider_fare / (5 * trips.trip_miles + greatest(trips.duration_minutes - 5 * trips.trip_miles, 0)) as fare_per_unit

    from trips
    inner join window_months
        on trips.source_month = window_months.source_month
    cross join holdout_window
    where trips.service = 'uber' and trips.pickup_at < holdout_window.holdout_from
        -- the window's bounds as scalar subqueries too: PostgreSQL prunes the stored trips' partitions outside them
        -- when the scan starts (the join alone reads every month loaded, then drops the rows)
        and trips.source_month >= (select min(first_month.source_month) from window_months as first_month)
        and trips.source_month <= (select last_month.holdout_month from holdout_window as last_month)

),

final as (

    select
        cast(source_month as {{ sql_type('text') }}) as source_month,
        cast(count(*) as bigint) as trips,
        cast({{ median_cont('fare_per_unit') }} as {{ sql_type('double precision') }}) as price_level

    from uber_trips
    group by source_month

)

select * from final
