-- ml_fare_training holds every taxi and Uber trip of fct_trips (counted per month and service), and only from
-- aligned months. Returns the months and services where that does not hold. In `dbt build` it checks the months the
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

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

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
left join months_aligned using (source_month)
where training_counts.training_trips is distinct from expected_counts.expected_trips
   or not coalesce(months_aligned.is_aligned, false)
