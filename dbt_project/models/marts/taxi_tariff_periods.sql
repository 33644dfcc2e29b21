-- The rate card pivoted into periods: one row per span of time in which no charge changes, one column per charge
-- (0 where a charge did not exist yet). Trips join it on valid_from <= pickup_at < valid_to.
{%- set charges = taxi_rate_card_charges() %}
with

rate_card as (

    select * from {{ ref('taxi_rate_card') }}

),

boundaries as (

    select effective_from as valid_from from rate_card
    union
    select effective_to as valid_from from rate_card
    where effective_to is not null

),

periods as (

    select
        valid_from,
        lead(valid_from) over (order by valid_from) as valid_to

    from boundaries

),

final as (

    select
        cast(periods.valid_from as date) as valid_from,
        cast(periods.valid_to as date) as valid_to,
        {%- for charge in charges %}
        cast(coalesce(max(case when rate_card.charge = '{{ charge }}' then rate_card.amount_usd end), 0) as {{ sql_type('double precision') }})
            as {{ charge }}{{ "," if not loop.last }}
        {%- endfor %}

    from periods
    left join rate_card
        on periods.valid_from >= rate_card.effective_from
        and (rate_card.effective_to is null or periods.valid_from < rate_card.effective_to)
    group by periods.valid_from, periods.valid_to

)

select * from final
