-- For every file month and service: the raw rows equal the rule counts' raw trips, which equal the kept trips plus
-- the trips each rule removed; and in every month each kept trip is stored in int_trips_kept (each service learns
-- from all its clean months; none lost on the way, e.g. to a zone missing from dim_zones). Returns the months and
-- services where that does not hold.
-- Reads raw once (a count) and the stored trips once (a count), on the months this build built (var tested_months_where).
with

counts as (

    select * from {{ ref('cleaning_rule_counts') }}
    where {{ var('tested_months_where') }}

),

yellow_trips as (

    select * from {{ ref('stg_tlc__yellow_trips') }}
    where {{ var('tested_months_where') }}

),

fhvhv_trips as (

    select * from {{ ref('stg_tlc__fhvhv_trips') }}
    where {{ var('tested_months_where') }}

),

kept_trips as (

    select * from {{ ref('int_trips_kept') }}
    where {{ var('tested_months_where') }}

),

raw_rows as (

    select source_month, 'taxi' as service, count(*) as raw_rows from yellow_trips group by 1
    union all
    -- the service key as int_trips_unioned derives it (macros/outlier_rules.sql, hvfhs_company)
    select source_month, {{ hvfhs_company('license_num', lowercase=true) }}, count(*) from fhvhv_trips group by 1, 2

),

stored_rows as (

    select source_month, service, count(*) as stored_rows from kept_trips group by 1, 2

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
full outer join stored_rows using (source_month, service)
where raw_rows.raw_rows is distinct from summed.raw_trips
   or summed.raw_trips is distinct from summed.kept_trips + summed.trips_removed
   or coalesce(summed.kept_trips, 0) is distinct from coalesce(stored_rows.stored_rows, 0)
