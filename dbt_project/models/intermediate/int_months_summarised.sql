-- One row per file month and service: raw trips, what each cleaning rule flagged and removed, and what the kept
-- trips cover in time. Incremental by month; the month-level marts (cleaning_rule_counts, int_months_aligned,
-- service_month_coverage) are built from it, so they stay exact without reading every trip of history.
-- Three steps: counts per clock hour and removing rule in one hash-aggregated pass over the trips, per clock hour from
-- those, then per month (no distinct-count sort over millions of trips).
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
{%- set rules = outlier_rules() %}
with

flagged as (

    select * from {{ ref('int_trips_flagged') }}
    where {{ trip_months_filter() }}

),

by_rule as (

    -- the rule that removed a trip is a grouping key, computed once per trip: a count per rule over the trips would
    -- compute it (every rule's condition) once per count on PostgreSQL, which inlines the views below
    select
        source_month,
        service,
        date_trunc('hour', pickup_at) as pickup_hour_at,
        removal_rule,
        count(*) as trips,
        {%- for rule in rules %}
        count(*) filter (where is_{{ rule.name }}) as flagged_{{ rule.name }},
        {%- endfor %}
        min(pickup_at) as first_pickup_at,
        max(pickup_at) as last_pickup_at

    from flagged
    group by source_month, service, date_trunc('hour', pickup_at), removal_rule

),

hourly as (

    select
        source_month,
        service,
        pickup_hour_at,
        sum(trips) as raw_trips,
        coalesce(sum(case when removal_rule is null then trips end), 0) as kept_trips,
        {%- for rule in rules %}
        sum(flagged_{{ rule.name }}) as flagged_{{ rule.name }},
        coalesce(sum(case when removal_rule = '{{ rule.name }}' then trips end), 0) as removed_{{ rule.name }},
        {%- endfor %}
        min(case when removal_rule is null then first_pickup_at end) as first_pickup_at,
        max(case when removal_rule is null then last_pickup_at end) as last_pickup_at

    from by_rule
    group by source_month, service, pickup_hour_at

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
