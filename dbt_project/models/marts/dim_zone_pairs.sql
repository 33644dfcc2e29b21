-- One row per ordered pair of zones: what a quote knows about the route before the trip (distance between centroids,
-- where the taxi rate card's flat fare and surcharges apply, and the two zones' boroughs and airport flags, so that
-- ml_fare_training reads a trip's route in one join: one hash lookup per trip instead of three). The one place these are computed; ml_fare_training
-- joins it and the model bundle carries it for live requests. The congestion surcharge and the relief-zone fee are
-- expected per trip: the share of the pair's trips that paid them (zone_pair_charge_incidence) once the pair has
-- var charge_incidence_min_trips trips in the charge's periods, else 1 or 0 by the published zone lists (pickup or
-- dropoff in the zone: dim_zones, from seed charge_zones).
with

zones as (

    select * from {{ ref('dim_zones') }}

),

charge_incidence as (

    select * from {{ ref('zone_pair_charge_incidence') }}

),

pairs as (

    select
        pickup_zones.zone_id as pickup_zone_id,
        dropoff_zones.zone_id as dropoff_zone_id,
        {%- set distance = haversine_miles('pickup_zones.centroid_lat', 'pickup_zones.centroid_lon',
                                           'dropoff_zones.centroid_lat', 'dropoff_zones.centroid_lon') %}
        cast(round({{ double_as_numeric(distance) }}, 3) as {{ sql_type('double precision') }})
            as centroid_distance_miles,
        pickup_zones.zone_id = dropoff_zones.zone_id as is_same_zone,
        (pickup_zones.is_jfk and dropoff_zones.borough = 'Manhattan')
        or (dropoff_zones.is_jfk and pickup_zones.borough = 'Manhattan') as is_jfk_manhattan,
        dropoff_zones.is_newark as is_newark_dropoff,
        pickup_zones.is_laguardia or dropoff_zones.is_laguardia as is_laguardia_trip,
        pickup_zones.is_jfk or pickup_zones.is_laguardia as is_airport_fee_pickup,
        pickup_zones.is_congestion_zone or dropoff_zones.is_congestion_zone as is_congestion_trip,
        pickup_zones.is_relief_zone or dropoff_zones.is_relief_zone as is_relief_zone_trip,
        pickup_zones.borough as pickup_borough,
        dropoff_zones.borough as dropoff_borough,
        pickup_zones.is_airport as is_airport_pickup,
        dropoff_zones.is_airport as is_airport_dropoff

    from zones as pickup_zones
    cross join zones as dropoff_zones

),

final as (

    select
        pairs.pickup_zone_id,
        pairs.dropoff_zone_id,
        {{ cast_as(zone_pair_key('pairs.pickup_zone_id', 'pairs.dropoff_zone_id'), 'integer') }} as zone_pair_key,
        pairs.centroid_distance_miles,
        pairs.is_same_zone,
        pairs.is_jfk_manhattan,
        pairs.is_newark_dropoff,
        pairs.is_laguardia_trip,
        pairs.is_airport_fee_pickup,
        pairs.is_congestion_trip,
        pairs.is_relief_zone_trip,
        {{ cast_as('case
            when charge_incidence.congestion_trips >= ' ~ var('charge_incidence_min_trips') ~ '
                then charge_incidence.congestion_paid_share
            when pairs.is_congestion_trip then 1
            else 0
        end', 'double precision') }} as congestion_incidence,
        {{ cast_as('case
            when charge_incidence.relief_trips >= ' ~ var('charge_incidence_min_trips') ~ '
                then charge_incidence.relief_paid_share
            when pairs.is_relief_zone_trip then 1
            else 0
        end', 'double precision') }} as relief_zone_incidence,
        {{ cast_as('pairs.pickup_borough', 'text') }} as pickup_borough,
        {{ cast_as('pairs.dropoff_borough', 'text') }} as dropoff_borough,
        pairs.is_airport_pickup,
        pairs.is_airport_dropoff

    from pairs
    left join charge_incidence
        on
            pairs.pickup_zone_id = charge_incidence.pickup_zone_id
            and pairs.dropoff_zone_id = charge_incidence.dropoff_zone_id

)

select * from final
