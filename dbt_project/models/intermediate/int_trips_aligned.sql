-- The cleaned trips of the aligned months only (both taxi and Uber have data): what the marts compare and train on.
with

trips as (

    select * from {{ ref('int_trips_cleaned') }}

),

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

),

final as (

    select trips.*

    from trips
    inner join months_aligned
        on trips.source_month = months_aligned.source_month
    where months_aligned.is_aligned

)

select * from final
