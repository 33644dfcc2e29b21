-- The TLC zone shapes (WGS84), renamed and cast.
with

source as (

    select * from {{ source('tlc', 'zone_shapes') }}

),

renamed as (

    select
        {{ cast_as('location_id', 'integer') }} as zone_id,
        zone as zone_name,
        borough,
        {{ cast_as('centroid_lat', 'double precision') }} as centroid_lat,
        {{ cast_as('centroid_lon', 'double precision') }} as centroid_lon,
        geometry_wkt

    from source

)

select * from renamed
