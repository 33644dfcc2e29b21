-- Every trip with its speed and fare per mile, one flag per simple cleaning rule, and whether it passes them all:
-- what both the fare-per-mile fences and the flags are computed from (macros/outlier_rules.sql).
{%- set simple_rules = outlier_rules() | rejectattr("name", "equalto", "fare_per_mile_outlier") | list %}
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

final as (

    select
        *,
        {%- for rule in simple_rules %}
        coalesce({{ rule.condition }}, false) as is_{{ rule.name }},
        {%- endfor %}
        not ({%- for rule in simple_rules %}coalesce({{ rule.condition }}, false){{ " or " if not loop.last }}{%- endfor %}) as passes_simple_rules  -- noqa: LT01, LT06

    from measured

)

select * from final
