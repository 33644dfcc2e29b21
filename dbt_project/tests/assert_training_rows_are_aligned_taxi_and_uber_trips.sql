-- ml_fare_training holds every kept taxi and Uber trip (the rule counts' kept_trips) of the aligned months, and only
-- from aligned months. Returns the months and services where that does not hold. Reads the view once (a count,
-- which skips its per-row tariff), on the months this build built (var tested_months_where).
{%- set services = var('training_services') %}
with

training as (

    select * from {{ ref('ml_fare_training') }}
    where {{ var('tested_months_where') }}

),

counts as (

    select * from {{ ref('cleaning_rule_counts') }}
    where {{ var('tested_months_where') }}

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

    select counts.source_month, counts.service, max(counts.kept_trips) as expected_trips
    from counts
    inner join months_aligned on counts.source_month = months_aligned.source_month
    where months_aligned.is_aligned
        and counts.kept_trips > 0
        and counts.service in ({% for service in services %}'{{ service }}'{{ ", " if not loop.last }}{% endfor %})
    group by counts.source_month, counts.service

)

select *
from training_counts
full outer join expected_counts using (source_month, service)
left join months_aligned using (source_month)
where training_counts.training_trips is distinct from expected_counts.expected_trips
   or not coalesce(months_aligned.is_aligned, false)
