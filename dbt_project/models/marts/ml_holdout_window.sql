-- Where the holdout starts: one time for every service, within the newest `zone_pair_months` aligned months (where the
-- two services can be compared). It starts at a clock hour in which every training service has trips and grows
-- backwards from the newest one until the holdout holds at least the latest fifth (var holdout_fraction) of those
-- hours, `holdout_min_trips` trips of each service and `holdout_min_cells` route x hour-of-day cells with trips of
-- every service (what the calibration of the cheaper call needs). It never takes more than `holdout_max_share` of a
-- service's trips in those months, so the models keep something to learn from: when that cap stops it first,
-- `has_minimum` is false and the report says the figures rest on too few trips. One row (none without a shared hour).
{%- set services = var('training_services') %}
with

service_hours as (

    -- kept trips per file month, service and clock hour: int_trips_kept's rows counted once, when their month was built
    select * from {{ ref('int_service_hours') }}
    where service in ({% for service in services %}'{{ service }}'{{ ", " if not loop.last }}{% endfor %})

),

route_hours as (

    -- per file month, service, route and hour of day: the latest pickup (zone_pair_hourly_fares, over the same
    -- stored trips), so the window's trips are not grouped again on every build
    select * from {{ ref('zone_pair_hourly_fares') }}
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

hour_counts as (

    -- trips of each service per clock hour; an hour is shared when every service has some
    select
        hour_start_at,
        {%- for service in services %}
        trips_{{ service }},
        {%- endfor %}
        {% for service in services -%}
        case when trips_{{ service }} > 0 then 1 else 0 end{{ " +" if not loop.last }}
        {% endfor -%}
        as services

    from (
        select
            service_hours.pickup_hour_at as hour_start_at,
            {%- for service in services %}
            sum(case when service_hours.service = '{{ service }}' then service_hours.kept_trips else 0 end)
            as trips_{{ service }}{{ "," if not loop.last }}
            {%- endfor %}
        from service_hours
        inner join window_months
            on service_hours.source_month = window_months.source_month
        group by service_hours.pickup_hour_at
    ) as per_hour
    -- an hour whose trips were all cleaned away holds none
    where {% for service in services %}trips_{{ service }} > 0{{ " or " if not loop.last }}{% endfor %}

),

cells as (

    -- a route x hour-of-day cell enters a holdout starting at h with every service once h is at or before the newest
    -- hour of its least recent service
    select
        pickup_zone_id,
        dropoff_zone_id,
        pickup_hour,
        min(newest_at) as shared_from

    from (
        select
            route_hours.pickup_zone_id,
            route_hours.dropoff_zone_id,
            route_hours.pickup_hour,
            route_hours.service,
            max(date_trunc('hour', route_hours.last_pickup_at)) as newest_at
        from route_hours
        inner join window_months
            on route_hours.source_month = window_months.source_month
        group by route_hours.pickup_zone_id, route_hours.dropoff_zone_id, route_hours.pickup_hour, route_hours.service
    ) as cell_services
    group by pickup_zone_id, dropoff_zone_id, pickup_hour
    having count(*) = {{ services | length }}

),

cells_per_hour as (

    select
        shared_from as hour_start_at,
        count(*) as cells

    from cells
    group by shared_from

),

cumulative as (

    -- from the newest hour backwards: what a holdout starting at each hour would hold
    select
        hour_counts.hour_start_at,
        hour_counts.services = {{ services | length }} as is_shared,
        {%- for service in services %}
        sum(hour_counts.trips_{{ service }}) over (order by hour_counts.hour_start_at desc) as holdout_trips_{{ service }},
        sum(hour_counts.trips_{{ service }}) over () as window_trips_{{ service }},
        {%- endfor %}
        sum(coalesce(cells_per_hour.cells, 0)) over (order by hour_counts.hour_start_at desc) as holdout_cells

    from hour_counts
    left join cells_per_hour
        on hour_counts.hour_start_at = cells_per_hour.hour_start_at

),

candidates as (

    select
        *,
        row_number() over (order by hour_start_at desc) as holdout_hours,
        count(*) over () as shared_hours

    from cumulative
    where is_shared

),

judged as (

    select
        *,
        holdout_hours >= greatest(1, ceil(shared_hours * {{ var('holdout_fraction') }}))
        {%- for service in services %}
        and holdout_trips_{{ service }} >= {{ var('holdout_min_trips') }}
        {%- endfor %}
        and holdout_cells >= {{ var('holdout_min_cells') }} as has_minimum,
        holdout_hours = 1 or (
            {%- for service in services %}
            holdout_trips_{{ service }} <= {{ var('holdout_max_share') }} * window_trips_{{ service }}
            {{- " and" if not loop.last }}
            {%- endfor %}
        ) as is_allowed

    from candidates

),

chosen as (

    -- the first allowed start that holds the minimum, else the largest allowed one
    select *

    from judged
    where is_allowed
    order by has_minimum desc, case when has_minimum then holdout_hours else -holdout_hours end
    limit 1

),

final as (

    select
        cast(hour_start_at as timestamp) as holdout_from,
        cast({{ month_text_of('hour_start_at') }} as {{ sql_type('text') }}) as holdout_month,
        cast(shared_hours as integer) as shared_hours,
        cast(holdout_hours as integer) as holdout_hours,
        {%- for service in services %}
        cast(holdout_trips_{{ service }} as bigint) as holdout_trips_{{ service }},
        {%- endfor %}
        cast(holdout_cells as bigint) as holdout_cells,
        has_minimum

    from chosen

)

select * from final
