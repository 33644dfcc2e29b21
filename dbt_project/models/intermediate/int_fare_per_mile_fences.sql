-- The fare-per-mile fences of each service and file month: Tukey fences on ln(fare per mile) over the trips that
-- pass every other rule. Incremental by month: a night with one new month computes that month's fences only.
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
with

measured as (

    select * from {{ ref('int_trips_measured') }}
    where {{ trip_months_filter() }}

),

quartiles as (

    select
        service,
        source_month,
        {{ percentiles_cont('ln(fare_per_mile)', [0.25, 0.75]) }} as ln_quartiles

    from measured
    where passes_simple_rules and fare_per_mile > 0
    group by service, source_month

),

fences as (

    select
        service,
        source_month,
        {{ array_element('ln_quartiles', 1) }} as ln_p25,
        {{ array_element('ln_quartiles', 2) }} as ln_p75

    from quartiles

),

final as (

    -- rounded to 1e-6 on the log scale (a 0.0001% fare difference): exact enough, and stable to compare
    select
        {{ cast_as('service', 'text') }} as service,
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ round_double('ln_p25', 6) }} as fare_per_mile_ln_p25,
        {{ round_double('ln_p75', 6) }} as fare_per_mile_ln_p75,
        {{ round_double('(ln_p25 - ' ~ var('fare_per_mile_fence_k') ~ ' * greatest(ln_p75 - ln_p25, ' ~ var('fare_per_mile_min_iqr') ~ '))', 6) }}
            as fare_per_mile_ln_low,
        {{ round_double('(ln_p75 + ' ~ var('fare_per_mile_fence_k') ~ ' * greatest(ln_p75 - ln_p25, ' ~ var('fare_per_mile_min_iqr') ~ '))', 6) }}
            as fare_per_mile_ln_high

    from fences

)

select * from final
