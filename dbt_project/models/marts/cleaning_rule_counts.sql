-- How many trips each cleaning rule removed (and flagged), per file month and service.
-- A removed trip counts once, against the first rule it fails, so raw_trips = kept_trips + sum(trips_removed).
-- Built from the per-month summary (int_months_summarised), which is incremental by month.
{%- set rules = outlier_rules() %}
with

counted as (

    select * from {{ ref('int_months_summarised') }}

),

unpivoted as (

    select
        counted.source_month,
        counted.service,
        rules.rule_order,
        rules.rule_name,
        rules.rule_description,
        rules.trips_removed,
        rules.trips_flagged,
        counted.raw_trips,
        counted.kept_trips

    from counted
    cross join lateral (
        values
        {%- for rule in rules %}
            ({{ loop.index }}, '{{ rule.name }}', '{{ rule.description | replace("'", "''") }}',
             counted.removed_{{ rule.name }}, counted.flagged_{{ rule.name }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as rules (rule_order, rule_name, rule_description, trips_removed, trips_flagged)

),

final as (

    select
        source_month::text as source_month,
        service::text as service,
        rule_order::integer as rule_order,
        rule_name::text as rule_name,
        rule_description::text as rule_description,
        trips_removed::bigint as trips_removed,
        trips_flagged::bigint as trips_flagged,
        raw_trips::bigint as raw_trips,
        kept_trips::bigint as kept_trips,
        round(100.0 * trips_removed / nullif(raw_trips, 0), 3)::double precision as pct_removed

    from unpivoted

)

select * from final
