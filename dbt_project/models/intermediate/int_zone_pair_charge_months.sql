-- How many trips of each pickup -> dropoff zone pair in each file month paid the congestion surcharge and the
-- congestion relief zone fee, from the trips' own fields: the monthly building block of zone_pair_charge_incidence,
-- incremental by month. A trip counts for a charge only when picked up while the charge existed (its own fleet's
-- seed: taxi_rate_card for yellow taxis, hvfhv_charges for every high-volume for-hire service) and its field holds
-- a value of 0 or more (null: the file has no such column; negative: a refund or void). Every trip of the raw files
-- counts, cleaned away or not: whether a route pays a charge does not depend on the fare being plausible.
{{ config(incremental_strategy=fares_month_strategy(), partition_by=fares_month_partition_by()) }}
with

yellow_trips as (

    select * from {{ ref('stg_tlc__yellow_trips') }}
    where {{ trip_months_filter() }}

),

fhvhv_trips as (

    select * from {{ ref('stg_tlc__fhvhv_trips') }}
    where {{ trip_months_filter() }}

),

taxi_rate_card as (

    select * from {{ ref('taxi_rate_card') }}

),

hvfhv_charges as (

    select * from {{ ref('hvfhv_charges') }}

),

charge_periods as (

    select
        'taxi' as fleet,
        charge,
        effective_from,
        effective_to
    from taxi_rate_card
    where charge in ('congestion_surcharge', 'congestion_relief_zone_fee')
    union all
    select
        'hvfhv' as fleet,
        charge,
        effective_from,
        effective_to
    from hvfhv_charges
    where charge in ('congestion_surcharge', 'congestion_relief_zone_fee')

),

trips as (

    select
        'taxi' as fleet,
        source_month,
        pickup_at,
        pickup_zone_id,
        dropoff_zone_id,
        congestion_surcharge_amount,
        cbd_congestion_fee_amount
    from yellow_trips
    union all
    select
        'hvfhv' as fleet,
        source_month,
        pickup_at,
        pickup_zone_id,
        dropoff_zone_id,
        congestion_surcharge_amount,
        cbd_congestion_fee_amount
    from fhvhv_trips

),

charged as (

    select
        trips.source_month,
        trips.pickup_zone_id,
        trips.dropoff_zone_id,
        trips.congestion_surcharge_amount,
        trips.cbd_congestion_fee_amount,
        coalesce(congestion_periods.charge is not null and trips.congestion_surcharge_amount >= 0, false)
            as counts_for_congestion,
        coalesce(relief_periods.charge is not null and trips.cbd_congestion_fee_amount >= 0, false)
            as counts_for_relief

    from trips
    left join charge_periods as congestion_periods
        on
            trips.fleet = congestion_periods.fleet
            and congestion_periods.charge = 'congestion_surcharge'
            and trips.pickup_at >= congestion_periods.effective_from
            and (congestion_periods.effective_to is null or trips.pickup_at < congestion_periods.effective_to)
    left join charge_periods as relief_periods
        on
            trips.fleet = relief_periods.fleet
            and relief_periods.charge = 'congestion_relief_zone_fee'
            and trips.pickup_at >= relief_periods.effective_from
            and (relief_periods.effective_to is null or trips.pickup_at < relief_periods.effective_to)
    where trips.pickup_zone_id is not null and trips.dropoff_zone_id is not null

),

final as (

    select
        {{ cast_as('source_month', 'text') }} as source_month,
        {{ cast_as('pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('sum(case when counts_for_congestion then 1 else 0 end)', 'bigint') }} as congestion_trips,
        {{ cast_as('sum(case when counts_for_congestion and congestion_surcharge_amount > 0 then 1 else 0 end)',
                   'bigint') }} as congestion_paid_trips,
        {{ cast_as('sum(case when counts_for_relief then 1 else 0 end)', 'bigint') }} as relief_trips,
        {{ cast_as('sum(case when counts_for_relief and cbd_congestion_fee_amount > 0 then 1 else 0 end)',
                   'bigint') }} as relief_paid_trips

    from charged
    where counts_for_congestion or counts_for_relief
    group by source_month, pickup_zone_id, dropoff_zone_id

)

select * from final
