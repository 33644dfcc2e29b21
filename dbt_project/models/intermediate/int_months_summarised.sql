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
        source_month::text as source_month,
        service::text as service,
        count(*)::bigint as raw_trips,
        (count(*) filter (where removal_rule is null))::bigint as kept_trips,
        {%- for rule in rules %}
        (count(*) filter (where is_{{ rule.name }}))::bigint as flagged_{{ rule.name }},
        (count(*) filter (where removal_rule = '{{ rule.name }}'))::bigint as removed_{{ rule.name }},
        {%- endfor %}
        min(pickup_at) filter (where removal_rule is null) as first_pickup_at,
        max(pickup_at) filter (where removal_rule is null) as last_pickup_at,
        (count(distinct pickup_at::date) filter (where removal_rule is null))::integer as days_covered,
        (count(distinct date_trunc('hour', pickup_at)) filter (where removal_rule is null))::integer as hours_covered

    from flagged
    group by source_month, service

)

select * from final
