-- Every trip with one flag per cleaning rule (macros/outlier_rules.sql) and the first rule that removes it.
-- A view: the per-month fences come from int_fare_per_mile_fences, so reading one month reads only that month.
{%- set rules = outlier_rules() %}
{%- set fare_per_mile_rule = rules | selectattr("name", "equalto", "fare_per_mile_outlier") | first %}
with

measured as (

    select * from {{ ref('int_trips_measured') }}

),

fences as (

    select * from {{ ref('int_fare_per_mile_fences') }}

),

fenced as (

    select
        measured.*,
        fences.fare_per_mile_ln_low,
        fences.fare_per_mile_ln_high

    from measured
    left join fences
        on measured.service = fences.service
        and measured.source_month = fences.source_month

),

flagged as (

    select
        *,
        passes_simple_rules and coalesce({{ fare_per_mile_rule.condition }}, false) as is_fare_per_mile_outlier

    from fenced

),

final as (

    select
        trip_id,
        service,
        source_month,
        pickup_at,
        dropoff_at,
        pickup_zone_id,
        dropoff_zone_id,
        trip_miles,
        duration_minutes,
        rider_fare,
        tip_amount,
        speed_mph,
        fare_per_mile,
        {%- for rule in rules %}
        is_{{ rule.name }},
        {%- endfor %}
        -- the fences' rule comes last: a trip reaching it passes every simple rule, so its own condition decides
        -- (is_fare_per_mile_outlier would test every simple rule once more, per trip, on PostgreSQL)
        case
            {%- for rule in rules %}
            {%- if loop.last and rule.name == fare_per_mile_rule.name %}
            when coalesce({{ fare_per_mile_rule.condition }}, false) then '{{ rule.name }}'
            {%- else %}
            when is_{{ rule.name }} then '{{ rule.name }}'
            {%- endif %}
            {%- endfor %}
        end as removal_rule

    from flagged

)

select * from final
