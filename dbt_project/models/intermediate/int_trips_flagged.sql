-- Every trip with one flag per cleaning rule (macros/outlier_rules.sql) and the first rule that removes it.
{%- set rules = outlier_rules() %}
{%- set simple_rules = rules | rejectattr("name", "equalto", "fare_per_mile_outlier") | list %}
{%- set fare_per_mile_rule = rules | selectattr("name", "equalto", "fare_per_mile_outlier") | first %}
with

trips as (

    select * from {{ ref('int_trips_unioned') }}

),

measured as (

    select
        *,
        case when duration_minutes > 0 then trip_miles / (duration_minutes / 60.0) end as speed_mph,
        case when rider_fare > 0 and trip_miles > 0 then rider_fare / trip_miles end as fare_per_mile

    from trips

),

simple_flags as (

    select
        *,
        {%- for rule in simple_rules %}
        coalesce({{ rule.condition }}, false) as is_{{ rule.name }},
        {%- endfor %}
        not ({%- for rule in simple_rules %}coalesce({{ rule.condition }}, false){{ " or " if not loop.last }}{%- endfor %}) as passes_simple_rules

    from measured

),

-- The fare-per-mile distribution of each service and month, on the log scale (fares per mile are right-skewed).
fare_per_mile_quartiles as (

    select
        service,
        source_month,
        percentile_cont(array[0.25, 0.75]) within group (order by ln(fare_per_mile)) as ln_quartiles

    from simple_flags
    where passes_simple_rules and fare_per_mile > 0
    group by service, source_month

),

fare_per_mile_fences as (

    select
        service,
        source_month,
        ln_quartiles[1] as ln_p25,
        ln_quartiles[2] as ln_p75
    from fare_per_mile_quartiles

),

fare_per_mile_bounds as (

    select
        service,
        source_month,
        ln_p25 - {{ var('fare_per_mile_fence_k') }} * greatest(ln_p75 - ln_p25, {{ var('fare_per_mile_min_iqr') }}) as fare_per_mile_ln_low,
        ln_p75 + {{ var('fare_per_mile_fence_k') }} * greatest(ln_p75 - ln_p25, {{ var('fare_per_mile_min_iqr') }}) as fare_per_mile_ln_high

    from fare_per_mile_fences

),

fenced as (

    select
        simple_flags.*,
        fare_per_mile_bounds.fare_per_mile_ln_low,
        fare_per_mile_bounds.fare_per_mile_ln_high

    from simple_flags
    left join fare_per_mile_bounds
        on simple_flags.service = fare_per_mile_bounds.service
        and simple_flags.source_month = fare_per_mile_bounds.source_month

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
        case
            {%- for rule in rules %}
            when is_{{ rule.name }} then '{{ rule.name }}'
            {%- endfor %}
        end as removal_rule

    from flagged

)

select * from final
