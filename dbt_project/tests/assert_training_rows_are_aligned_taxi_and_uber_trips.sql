-- ml_fare_training holds exactly the taxi and Uber trips of fct_trips, and only from aligned months.
with

training as (

    select * from {{ ref('ml_fare_training') }}

),

trips as (

    select * from {{ ref('fct_trips') }}

),

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

),

expected as (

    select trip_id from trips where service in ('taxi', 'uber')

),

mismatched as (

    select coalesce(training.trip_id, expected.trip_id) as trip_id, 'missing or extra' as problem
    from training
    full outer join expected on training.trip_id = expected.trip_id
    where training.trip_id is null or expected.trip_id is null

),

unaligned as (

    select training.trip_id, 'month not aligned' as problem
    from training
    inner join months_aligned on training.source_month = months_aligned.source_month
    where not months_aligned.is_aligned

)

select * from mismatched
union all
select * from unaligned
