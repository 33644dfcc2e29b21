-- One row per TLC zone: names, borough, service zone, centroid and shape, whether it is an airport, and whether it lies
-- in the congestion-surcharge zone or the congestion relief zone by the published zone lists (seed charge_zones).
with

zones as (

    select * from {{ ref('stg_tlc__zones') }}

),

zone_shapes as (

    select * from {{ ref('stg_tlc__zone_shapes') }}

),

charge_zones as (

    select * from {{ ref('charge_zones') }}

),

congestion_zones as (

    select distinct zone_id from charge_zones
    where charge_zone = 'congestion_surcharge'

),

relief_zones as (

    select distinct zone_id from charge_zones
    where charge_zone = 'congestion_relief_zone'

),

final as (

    select
        {{ cast_as('zones.zone_id', 'integer') }} as zone_id,
        {{ cast_as("coalesce(nullif(zones.borough, 'N/A'), 'Unknown')", 'text') }} as borough,
        {{ cast_as("coalesce(nullif(zones.zone_name, 'N/A'), 'Unknown')", 'text') }} as zone_name,
        {{ cast_as("nullif(zones.service_zone, 'N/A')", 'text') }} as service_zone,
        {{ cast_as('zone_shapes.centroid_lat', 'double precision') }} as centroid_lat,
        {{ cast_as('zone_shapes.centroid_lon', 'double precision') }} as centroid_lon,
        {{ cast_as('zone_shapes.geometry_wkt', 'text') }} as geometry_wkt,
        coalesce(zones.service_zone in ('Airports', 'EWR'), false) as is_airport,
        coalesce(zones.zone_name = 'JFK Airport', false) as is_jfk,
        coalesce(zones.zone_name = 'LaGuardia Airport', false) as is_laguardia,
        coalesce(zones.zone_name = 'Newark Airport', false) as is_newark,
        congestion_zones.zone_id is not null as is_congestion_zone,
        relief_zones.zone_id is not null as is_relief_zone

    from zones
    left join zone_shapes
        on zones.zone_id = zone_shapes.zone_id
    left join congestion_zones
        on zones.zone_id = congestion_zones.zone_id
    left join relief_zones
        on zones.zone_id = relief_zones.zone_id

)

select * from final
