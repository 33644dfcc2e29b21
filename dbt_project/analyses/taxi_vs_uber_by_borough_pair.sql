-- Which is cheaper, borough pair by borough pair? Median rider fare of each service over the aligned trips,
-- and the share of zone-pair × hour cells where the taxi median is the lower one.
-- Compile with `fares dbt compile --select taxi_vs_uber_by_borough_pair` and run the SQL in target/compiled/ (written
-- once for both engines through macros/dialect.sql).
with

trips as (

    select * from {{ ref('fct_trips') }}

),

fares as (

    select * from {{ ref('zone_pair_hourly_fares') }}

),

medians as (

    select
        borough_pair,
        {{ round_double(median_cont("case when service = 'taxi' then rider_fare end"), 2) }} as taxi_median_fare,
        {{ round_double(median_cont("case when service = 'uber' then rider_fare end"), 2) }} as uber_median_fare,
        sum(case when service = 'taxi' then 1 else 0 end) as taxi_trips,
        sum(case when service = 'uber' then 1 else 0 end) as uber_trips

    from trips
    group by borough_pair

),

cells as (

    select
        taxi.pickup_zone_id,
        taxi.dropoff_zone_id,
        taxi.pickup_hour,
        taxi.median_rider_fare < uber.median_rider_fare as is_taxi_cheaper

    from fares as taxi
    inner join fares as uber
        on taxi.pickup_zone_id = uber.pickup_zone_id
        and taxi.dropoff_zone_id = uber.dropoff_zone_id
        and taxi.pickup_hour = uber.pickup_hour
    where taxi.service = 'taxi' and uber.service = 'uber'

),

final as (

    select
        medians.*,
        (
            select {{ round_double('100.0 * avg(case when cells.is_taxi_cheaper then 1.0 else 0.0 end)', 1) }}
            from cells
        ) as pct_cells_taxi_cheaper_overall

    from medians
    where medians.taxi_trips > 0 and medians.uber_trips > 0
    order by medians.taxi_trips + medians.uber_trips desc

)

select * from final
