-- Where the holdout starts: one time for every service, the start of the latest fifth (var holdout_fraction) of the
-- clock hours in which every training service has trips, within the newest `zone_pair_months` aligned months (the
-- same months the training sample reads). Models learn from what came before it and are judged on what came after,
-- so both services are judged on the same days and hours. One row (none without a shared hour).
{%- set services = var('training_services') %}
with

trips as (

    -- the rows of ml_fare_training, read from the stored trips: only their service and time matter here, and the view's
    -- meter fares and zone-pair features would cost minutes on a real month (ml_fare_training keeps every kept trip
    -- of these services: dim_zone_pairs holds every pair of known zones)
    select
        service,
        source_month,
        pickup_at

    from {{ ref('int_trips_kept') }}
    where service in ({% for service in services %}'{{ service }}'{{ ", " if not loop.last }}{% endfor %})

),

months_aligned as (

    select * from {{ ref('int_months_aligned') }}

),

window_months as (

    select source_month
    from months_aligned
    where is_aligned
    order by source_month desc
    limit {{ var('zone_pair_months') }}

),

service_hours as (

    -- hashed down to (hour, service) first: a count(distinct) over every trip would sort a month of them
    select distinct
        date_trunc('hour', trips.pickup_at) as hour_start_at,
        trips.service

    from trips
    inner join window_months
        on trips.source_month = window_months.source_month

),

shared_hours as (

    select hour_start_at

    from service_hours
    group by hour_start_at
    having count(*) = {{ services | length }}

),

ranked as (

    select
        hour_start_at,
        row_number() over (order by hour_start_at desc) as hours_from_newest,
        count(*) over () as shared_hours

    from shared_hours

),

final as (

    select
        cast(min(hour_start_at) as timestamp) as holdout_from,
        cast({{ month_text_of('min(hour_start_at)') }} as {{ sql_type('text') }}) as holdout_month,
        cast(max(shared_hours) as integer) as shared_hours,
        cast(count(*) as integer) as holdout_hours

    from ranked
    where hours_from_newest <= greatest(1, ceil(shared_hours * {{ var('holdout_fraction') }}))
    having count(*) > 0

)

select * from final
