-- The time-alignment window: a month is comparable only when both taxi and Uber have cleaned trips in it.
with

months as (

    select * from {{ ref('int_months_summarised') }}

),

counted as (

    select
        source_month,
        coalesce(sum(kept_trips) filter (where service = 'taxi'), 0) as taxi_trips,
        coalesce(sum(kept_trips) filter (where service = 'uber'), 0) as uber_trips

    from months
    group by source_month

),

final as (

    select
        source_month,
        {{ month_start('source_month') }} as month_start_on,
        {{ cast_as('taxi_trips', 'bigint') }} as taxi_trips,
        {{ cast_as('uber_trips', 'bigint') }} as uber_trips,
        taxi_trips > 0 and uber_trips > 0 as is_aligned

    from counted

)

select * from final
