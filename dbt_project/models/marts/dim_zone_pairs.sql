-- One row per ordered pair of zones: what a quote knows about the route before the trip (distance between centroids,
-- and where the taxi rate card's flat fare and surcharges apply). The one place these are computed; ml_fare_training
-- joins it and the model bundle carries it for live requests.
with

zones as (

    select * from {{ ref('dim_zones') }}

),

final as (

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
        pickup_zones.is_relief_zone or dropoff_zones.is_relief_zone as is_relief_zone_trip

    from zones as pickup_zones
    cross join zones as dropoff_zones

)

select * from final
