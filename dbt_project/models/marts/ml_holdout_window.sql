-- Where the holdout starts: one time for every service, within the newest `zone_pair_months` aligned months (where the
-- two services can be compared). It starts at a clock hour in which every training service has trips and grows
-- backwards from the newest one until the holdout holds at least the latest fifth (var holdout_fraction) of those
-- hours, `holdout_min_trips` trips of each service and `holdout_min_cells` route x hour-of-day cells with trips of
-- every service (what the calibration of the cheaper call needs). It never takes more than `holdout_max_share` of a
-- service's trips in those months, so the models keep something to learn from: when that cap stops it first,
-- `has_minimum` is false and the report says the figures rest on too few trips. One row (none without a shared hour).
{%- set services = var('training_services') %}
with

trips as (

    -- the rows of ml_fare_training, read from the stored trips: only their service, time and zones matter here, and
    -- the view's meter fares and zone-pair features would cost minutes on a real month
    select
        service,
        source_month,
        pickup_at,
        pickup_zone_id,
        dropoff_zone_id

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

window_trips as (

    select
        trips.service,
        trips.pickup_zone_id,
        trips.dropoff_zone_id,
        date_trunc('hour', trips.pickup_at) as hour_start_at,
        {{ hour_of('trips.pickup_at') }} as pickup_hour

    from trips
    inner join window_months
        on trips.source_month = window_months.source_month

),

hour_counts as (

    -- trips of each service per clock hour; an hour is shared when every service has some
    select
        hour_start_at,
        {%- for service in services %}
        sum(case when service = '{{ service }}' then 1 else 0 end) as trips_{{ service }},
        {%- endfor %}
        -- how many services have trips in the hour, without count(distinct): that would make PostgreSQL sort the
        -- window's trips by hour instead of hashing them
        {% for service in services -%}
        max(case when service = '{{ service }}' then 1 else 0 end){{ " +" if not loop.last }}
        {% endfor -%}
        as services

    from window_trips
    group by hour_start_at

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
            pickup_zone_id,
            dropoff_zone_id,
            pickup_hour,
            service,
            max(hour_start_at) as newest_at
        from window_trips
        group by pickup_zone_id, dropoff_zone_id, pickup_hour, service
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
