-- One row per file month and service: raw trips, what each cleaning rule flagged and removed, and what the kept
-- trips cover in time. Incremental by month; the month-level marts (cleaning_rule_counts, int_months_aligned,
-- service_month_coverage) are built from it, so they stay exact without reading every trip of history.
-- Summed from the month's clock hours (int_service_hours, the one pass over the trips), so no distinct-count sort
-- over millions of trips.
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
{%- set rules = outlier_rules() %}
with

hourly as (

    select * from {{ ref('int_service_hours') }}
    where {{ trip_months_filter() }}

),

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('service', 'text') }} as service,
        {{ cast_as('sum(raw_trips)', 'bigint') }} as raw_trips,
        {{ cast_as('sum(kept_trips)', 'bigint') }} as kept_trips,
        {%- for rule in rules %}
        {{ cast_as('sum(flagged_' ~ rule.name ~ ')', 'bigint') }} as flagged_{{ rule.name }},
        {{ cast_as('sum(removed_' ~ rule.name ~ ')', 'bigint') }} as removed_{{ rule.name }},
        {%- endfor %}
        min(first_pickup_at) as first_pickup_at,
        max(last_pickup_at) as last_pickup_at,
        {{ cast_as('(count(distinct ' ~ cast_as('pickup_hour_at', 'date') ~ ') filter (where kept_trips > 0))', 'integer') }} as days_covered,
        {{ cast_as('(count(*) filter (where kept_trips > 0))', 'integer') }} as hours_covered

    from hourly
    group by source_month, service

)

select * from final
