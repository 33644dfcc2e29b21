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

    {%- set rule_rows = [] %}
    {%- for rule in rules %}
        {%- do rule_rows.append([loop.index, "'" ~ rule.name ~ "'", "'" ~ escape_single_quotes(rule.description) ~ "'",
                                 "counted.removed_" ~ rule.name, "counted.flagged_" ~ rule.name]) %}
    {%- endfor %}
    {{ unpivot_rows('counted', 'rules', ['rule_order', 'rule_name', 'rule_description', 'trips_removed', 'trips_flagged'], rule_rows) }}

),

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('service', 'text') }} as service,
        {{ cast_as('rule_order', 'integer') }} as rule_order,
        {{ cast_as('rule_name', 'text') }} as rule_name,
        {{ cast_as('rule_description', 'text') }} as rule_description,
        {{ cast_as('trips_removed', 'bigint') }} as trips_removed,
        {{ cast_as('trips_flagged', 'bigint') }} as trips_flagged,
        {{ cast_as('raw_trips', 'bigint') }} as raw_trips,
        {{ cast_as('kept_trips', 'bigint') }} as kept_trips,
        {{ cast_as('round(100.0 * trips_removed / nullif(raw_trips, 0), 3)', 'double precision') }} as pct_removed

    from unpivoted

)

select * from final
