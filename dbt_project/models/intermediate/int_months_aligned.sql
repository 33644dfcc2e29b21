-- The time-alignment window: a month is comparable only when both taxi and Uber have cleaned trips in it.
with

trips as (

    select * from {{ ref('int_trips_cleaned') }}

),

months as (

    select
        source_month,
        count(*) filter (where service = 'taxi') as taxi_trips,
        count(*) filter (where service = 'uber') as uber_trips

    from trips
    group by source_month

),

final as (

    select
        source_month,
        to_date(source_month, 'YYYY-MM') as month_start_on,
        taxi_trips,
        uber_trips,
        taxi_trips > 0 and uber_trips > 0 as is_aligned

    from months

)

select * from final
