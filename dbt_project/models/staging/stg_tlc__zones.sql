-- The TLC zone lookup, renamed and cast.
with

source as (

    select * from {{ source('tlc', 'zones') }}

),

renamed as (

    select
        {{ cast_as('location_id', 'integer') }} as zone_id,
        borough,
        zone as zone_name,
        service_zone

    from source

)

select * from renamed
