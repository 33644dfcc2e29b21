-- ml_fare_training holds every stored taxi and Uber trip (int_trips_kept, counted per month and service: so none is
-- lost in the view's join to dim_zone_pairs), from every month: each service learns from all its clean months,
-- aligned or not. Returns the months and services where that does not hold. The stored table is read as it is. On the months in
-- intermediate.trip_months_tested (var tested_months_where): in `dbt build` the months the build (re)built, in
-- `dbt test` every built month (macros/trip_months.sql).
{%- set services = var('training_services') %}
with

training as (

    select * from {{ ref('ml_fare_training') }}
    where {{ var('tested_months_where') }}

),

trips as (

    select * from {{ ref('int_trips_kept') }}
    where {{ var('tested_months_where') }}

),

training_counts as (

    select source_month, service, count(*) as training_trips
    from training
    group by source_month, service

),

expected_counts as (

    select source_month, service, count(*) as expected_trips
    from trips
    where service in ({% for service in services %}'{{ service }}'{{ ", " if not loop.last }}{% endfor %})
    group by source_month, service

)

select *
from training_counts
full outer join expected_counts using (source_month, service)
where training_counts.training_trips is distinct from expected_counts.expected_trips
