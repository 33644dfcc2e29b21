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
        {{ cast_as('covered.source_month', 'text') }} as source_month,
        {{ cast_as('covered.service', 'text') }} as service,
        {{ cast_as('months_aligned.is_aligned', 'boolean') }} as is_aligned,
        {{ cast_as('covered.trips', 'bigint') }} as trips,
        {{ cast_as('covered.first_pickup_at', 'timestamp') }} as first_pickup_at,
        {{ cast_as('covered.last_pickup_at', 'timestamp') }} as last_pickup_at,
        {{ cast_as('covered.days_covered', 'integer') }} as days_covered,
        {{ cast_as('covered.hours_covered', 'integer') }} as hours_covered,
        {{ cast_as(days_in_month('months_aligned.month_start_on'), 'integer') }} as days_in_month,
        {{ cast_as('round(100.0 * covered.hours_covered / (24 * ' ~ days_in_month('months_aligned.month_start_on') ~ '), 2)', 'double precision') }}
            as pct_hours_covered

    from covered
    inner join months_aligned
        on covered.source_month = months_aligned.source_month

)

select * from final
