-- One row per file month and service: raw trips, what each cleaning rule flagged and removed, and what the kept
-- trips cover in time. Incremental by month; the month-level marts (cleaning_rule_counts, int_months_aligned,
-- service_month_coverage) are built from it, so they stay exact without reading every trip of history.
{%- set rules = outlier_rules() %}
with

flagged as (

    select * from {{ ref('int_trips_flagged') }}
    where {{ trip_months_filter() }}

),

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('service', 'text') }} as service,
        {{ cast_as('count(*)', 'bigint') }} as raw_trips,
        {{ cast_as('(count(*) filter (where removal_rule is null))', 'bigint') }} as kept_trips,
        {%- for rule in rules %}
        {{ cast_as('(count(*) filter (where is_' ~ rule.name ~ '))', 'bigint') }} as flagged_{{ rule.name }},
        {{ cast_as("(count(*) filter (where removal_rule = '" ~ rule.name ~ "'))", 'bigint') }} as removed_{{ rule.name }},
        {%- endfor %}
        min(pickup_at) filter (where removal_rule is null) as first_pickup_at,
        max(pickup_at) filter (where removal_rule is null) as last_pickup_at,
        {{ cast_as('(count(distinct ' ~ cast_as('pickup_at', 'date') ~ ') filter (where removal_rule is null))', 'integer') }} as days_covered,
        {{ cast_as("(count(distinct date_trunc('hour', pickup_at)) filter (where removal_rule is null))", 'integer') }} as hours_covered

    from flagged
    group by source_month, service

)

select * from final
