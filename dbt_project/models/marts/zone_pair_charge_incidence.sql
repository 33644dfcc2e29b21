-- Per ordered zone pair, the share of trips that paid the congestion surcharge and the congestion relief zone fee, as
-- the trips' own fields say, over every built month in which the charge existed (int_zone_pair_charge_months). A trip
-- that only passes through a zone pays, so a pair can pay though neither of its zones is in a zone list; the share is
-- trusted once the pair has var charge_incidence_min_trips trips (dim_zone_pairs falls back to the lists below it).
with

charge_months as (

    select * from {{ ref('int_zone_pair_charge_months') }}

),

summed as (

    select
        pickup_zone_id,
        dropoff_zone_id,
        sum(congestion_trips) as congestion_trips,
        sum(congestion_paid_trips) as congestion_paid_trips,
        sum(relief_trips) as relief_trips,
        sum(relief_paid_trips) as relief_paid_trips

    from charge_months
    group by pickup_zone_id, dropoff_zone_id

),

final as (

    select
        {{ cast_as('pickup_zone_id', 'integer') }} as pickup_zone_id,
        {{ cast_as('dropoff_zone_id', 'integer') }} as dropoff_zone_id,
        {{ cast_as('congestion_trips', 'bigint') }} as congestion_trips,
        {{ cast_as('congestion_paid_trips', 'bigint') }} as congestion_paid_trips,
        {{ cast_as('case when congestion_trips > 0 then congestion_paid_trips / '
                   ~ cast_as('congestion_trips', 'double precision') ~ ' end', 'double precision') }}
            as congestion_paid_share,
        {{ cast_as('relief_trips', 'bigint') }} as relief_trips,
        {{ cast_as('relief_paid_trips', 'bigint') }} as relief_paid_trips,
        {{ cast_as('case when relief_trips > 0 then relief_paid_trips / '
                   ~ cast_as('relief_trips', 'double precision') ~ ' end', 'double precision') }}
            as relief_paid_share

    from summed

)

select * from final
