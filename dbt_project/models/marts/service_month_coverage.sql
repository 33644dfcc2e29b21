-- What each service's cleaned data actually covers in each file month, and whether the month is in the aligned window.
with

months as (

    select * from {{ ref('int_months_summarised') }}

),

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

),

covered as (

    select
        source_month,
        service,
        kept_trips as trips,
        first_pickup_at,
        last_pickup_at,
        days_covered,
        hours_covered

    from months
    where kept_trips > 0

),

final as (

    select
        covered.source_month::text as source_month,
        covered.service::text as service,
        months_aligned.is_aligned::boolean as is_aligned,
        covered.trips::bigint as trips,
        covered.first_pickup_at::timestamp as first_pickup_at,
        covered.last_pickup_at::timestamp as last_pickup_at,
        covered.days_covered::integer as days_covered,
        covered.hours_covered::integer as hours_covered,
        extract(day from (months_aligned.month_start_on + interval '1 month' - interval '1 day'))::integer as days_in_month,
        round(100.0 * covered.hours_covered / (24 * extract(day from (months_aligned.month_start_on + interval '1 month' - interval '1 day'))), 2)::double precision
            as pct_hours_covered

    from covered
    inner join months_aligned
        on covered.source_month = months_aligned.source_month

)

select * from final
