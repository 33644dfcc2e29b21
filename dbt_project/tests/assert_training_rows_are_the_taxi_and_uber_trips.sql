-- ml_fare_training holds every taxi and Uber trip of fct_trips (counted per month and service), from every month:
-- each service learns from all its clean months, aligned or not. Returns the months and services where that does not hold. In `dbt build` it checks the months the
-- build (re)built (macros/trip_months.sql); `dbt test` checks every month.
{%- set services = var('training_services') %}
with

training as (

    select * from {{ ref('ml_fare_training') }}
    where {{ tested_months_filter() }}

),

trips as (

    select * from {{ ref('fct_trips') }}
    where {{ tested_months_filter() }}

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
