-- One row per file month, service and clock hour of pickup: raw trips, what each cleaning rule flagged and removed,
-- and the kept trips (those int_trips_kept stores: assert_cleaning_counts_add_up) with their first and last pickup.
-- The one pass over a month's trips that the month-level summaries are built from: int_months_summarised sums it per
-- month, ml_holdout_window reads its kept trips per hour instead of counting the window's stored trips again.
-- Incremental by file month.
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

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('service', 'text') }} as service,
        {{ cast_as('pickup_hour_at', 'timestamp') }} as pickup_hour_at,
        {{ cast_as('sum(trips)', 'bigint') }} as raw_trips,
        {{ cast_as('coalesce(sum(case when removal_rule is null then trips end), 0)', 'bigint') }} as kept_trips,
        {%- for rule in rules %}
        {{ cast_as('sum(flagged_' ~ rule.name ~ ')', 'bigint') }} as flagged_{{ rule.name }},
        {{ cast_as("coalesce(sum(case when removal_rule = '" ~ rule.name ~ "' then trips end), 0)", 'bigint') }}
        as removed_{{ rule.name }},
        {%- endfor %}
        min(case when removal_rule is null then first_pickup_at end) as first_pickup_at,
        max(case when removal_rule is null then last_pickup_at end) as last_pickup_at

    from by_rule
    group by source_month, service, pickup_hour_at

)

select * from final
