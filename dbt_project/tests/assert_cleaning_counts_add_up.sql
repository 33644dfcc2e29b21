-- For every file month and service, the raw rows equal the kept trips plus the trips each rule removed,
-- and the kept trips are exactly the rows of int_trips_cleaned. Returns the months and services where they do not.
-- In `dbt build` it checks the months the build (re)built (macros/trip_months.sql); `dbt test` checks every month.
with

counts as (

    select * from {{ ref('cleaning_rule_counts') }}
    where {{ tested_months_filter() }}

),

yellow_trips as (

    select * from {{ ref('stg_tlc__yellow_trips') }}
    where {{ tested_months_filter() }}

),

fhvhv_trips as (

    select * from {{ ref('stg_tlc__fhvhv_trips') }}
    where {{ tested_months_filter() }}

),

cleaned as (

    select * from {{ ref('int_trips_cleaned') }}
    where {{ tested_months_filter() }}

),

raw_rows as (

    select source_month, 'taxi' as service, count(*) as raw_rows from yellow_trips group by 1
    union all
    select source_month, lower(service), count(*) from fhvhv_trips group by 1, 2

),

cleaned_rows as (

    select source_month, service, count(*) as cleaned_rows from cleaned group by 1, 2

),

summed as (

    select source_month, service, max(raw_trips) as raw_trips, max(kept_trips) as kept_trips,
        sum(trips_removed) as trips_removed
    from counts
    group by 1, 2

)

select *
from raw_rows
full outer join summed using (source_month, service)
left join cleaned_rows using (source_month, service)
where raw_rows.raw_rows is distinct from summed.raw_trips
   or summed.raw_trips is distinct from summed.kept_trips + summed.trips_removed
   or summed.kept_trips is distinct from coalesce(cleaned_rows.cleaned_rows, 0)
