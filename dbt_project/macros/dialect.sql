{#-
    The SQL that differs between PostgreSQL and Spark, so each model is written once. Every dispatched macro of the
    project (here and in the other macro files) has a postgres__ and a spark__ form, and a default__ that fails at
    compile time naming the adapter (raise_unsupported_adapter): an adapter fares was not written for gets an error,
    not PostgreSQL's SQL. The postgres__ forms are exactly the SQL the models held before; the spark__ forms compute
    the same values (same percentile interpolation, same rounding, same day numbering).

    Databricks: adapter.dispatch tries `<adapter>__`, then the adapter's parents', then `default__`, and dbt-databricks
    declares spark its parent (its AdapterPlugin has dependencies=["spark"]), so on Databricks the spark__ forms apply
    without databricks__ copies. A databricks__ form is written only where Databricks must differ from Spark.
-#}

{#- The compile-time error of a default__ form: `macro_name` has no form for the adapter in use. -#}
{% macro raise_unsupported_adapter(macro_name) -%}
    {{ exceptions.raise_compiler_error("fares: macro " ~ macro_name ~ " has no form for adapter '" ~ target.type
                                       ~ "' (supported: postgres, spark, databricks)") }}
{%- endmacro %}

{#- A type name as the adapter spells it; the models and contracts use PostgreSQL's names. -#}
{% macro sql_type(name) -%}
    {{ return(adapter.dispatch('sql_type', 'fares')(name)) }}
{%- endmacro %}

{% macro default__sql_type(name) -%}
    {{ raise_unsupported_adapter('sql_type') }}
{%- endmacro %}

{% macro postgres__sql_type(name) -%}
    {{ return(name) }}
{%- endmacro %}

{% macro spark__sql_type(name) -%}
    {%- set spark_names = {
        "text": "string", "double precision": "double", "integer": "int", "numeric": "decimal(38, 10)",
        "timestamp": "timestamp", "bigint": "bigint", "boolean": "boolean", "date": "date"} -%}
    {{ return(spark_names.get(name | trim | lower, name)) }}
{%- endmacro %}

{#- expr cast to a type (PostgreSQL names): `expr::type` on PostgreSQL, `cast(expr as type)` elsewhere. -#}
{% macro cast_as(expr, type) -%}
    {{ return(adapter.dispatch('cast_as', 'fares')(expr, type)) }}
{%- endmacro %}

{% macro default__cast_as(expr, type) -%}
    {{ raise_unsupported_adapter('cast_as') }}
{%- endmacro %}

{% macro postgres__cast_as(expr, type) -%}
    {{ expr }}::{{ type }}
{%- endmacro %}

{% macro spark__cast_as(expr, type) -%}
    cast({{ expr }} as {{ sql_type(type) }})
{%- endmacro %}

{#- A double as numeric the way PostgreSQL converts it: through its 15 significant digits (11.094999999999999 ->
    11.095), so that a rounding after it goes half away from zero on the decimal value, not on the binary one. -#}
{% macro double_as_numeric(expr) -%}
    {{ return(adapter.dispatch('double_as_numeric', 'fares')(expr)) }}
{%- endmacro %}

{% macro default__double_as_numeric(expr) -%}
    {{ raise_unsupported_adapter('double_as_numeric') }}
{%- endmacro %}

{% macro postgres__double_as_numeric(expr) -%}
    cast({{ expr }} as numeric)
{%- endmacro %}

{#- Spark's cast(double as decimal) or round(double) would use the full binary value (-> 11.09): the same 15 digits
    as text first, then a decimal. -#}
{% macro spark__double_as_numeric(expr) -%}
    try_cast(format_string('%.15g', cast({{ expr }} as double)) as decimal(38, 18))
{%- endmacro %}

{#- A double rounded half away from zero to `digits` decimals, as a double (PostgreSQL rounds it as numeric). -#}
{% macro round_double(expr, digits) -%}
    {{ return(adapter.dispatch('round_double', 'fares')(expr, digits)) }}
{%- endmacro %}

{% macro default__round_double(expr, digits) -%}
    {{ raise_unsupported_adapter('round_double') }}
{%- endmacro %}

{% macro postgres__round_double(expr, digits) -%}
    round({{ expr }}::numeric, {{ digits }})::double precision
{%- endmacro %}

{% macro spark__round_double(expr, digits) -%}
    cast(round({{ spark__double_as_numeric(expr) }}, {{ digits }}) as double)
{%- endmacro %}

{#- A money amount rounded to whole cents, as a double: round_double(expr, 2) for every amount of zero or more, in
    float arithmetic on PostgreSQL. PostgreSQL inlines the cleaning views and copies a column's expression into every
    reference (the rider fare is read some five times per trip by the rules): the numeric detour cost ~0.5 us a copy
    (10 s of a real month's 20M HVFHV trips, per copy, per pass over raw); this costs a few arithmetic operations, on
    one copy of `expr`. Equal to round_double(expr, 2) for sums of amounts in cents (every TLC amount has two decimals:
    such a sum is a whole number of cents give or take 1e-12) and at ties of a third decimal 5 (the 1e-9 nudge stands
    in for the decimal text PostgreSQL's numeric cast goes through: 1.005 is 1.00499999999999989 as a double, 1.005 as
    numeric). A negative amount rounds half up instead of away from zero (-1.005 -> -1.00): every trip with a fare
    below a cent is removed by the rule fare_not_positive either way, so no stored fare, flag or count differs.
    Spark keeps its decimal round (it computes the value once per row anyway). -#}
{% macro round_cents(expr) -%}
    {{ return(adapter.dispatch('round_cents', 'fares')(expr)) }}
{%- endmacro %}

{% macro default__round_cents(expr) -%}
    {{ raise_unsupported_adapter('round_cents') }}
{%- endmacro %}

{% macro postgres__round_cents(expr) -%}
    (floor(({{ expr }}) * 100 + 0.500000001) / 100)
{%- endmacro %}

{% macro spark__round_cents(expr) -%}
    {{ spark__round_double(expr, 2) }}
{%- endmacro %}

{#- Continuous percentiles (linear interpolation) of expr for each fraction, as one array per group. -#}
{% macro percentiles_cont(expr, fractions) -%}
    {{ return(adapter.dispatch('percentiles_cont', 'fares')(expr, fractions)) }}
{%- endmacro %}

{% macro default__percentiles_cont(expr, fractions) -%}
    {{ raise_unsupported_adapter('percentiles_cont') }}
{%- endmacro %}

{% macro postgres__percentiles_cont(expr, fractions) -%}
    percentile_cont(array[{{ fractions | join(", ") }}]) within group (order by {{ expr }})
{%- endmacro %}

{% macro spark__percentiles_cont(expr, fractions) -%}
    percentile({{ expr }}, array({{ fractions | join(", ") }}))
{%- endmacro %}

{#- The continuous median (linear interpolation between the two middle values) of expr within a group. -#}
{% macro median_cont(expr) -%}
    {{ return(adapter.dispatch('median_cont', 'fares')(expr)) }}
{%- endmacro %}

{% macro default__median_cont(expr) -%}
    {{ raise_unsupported_adapter('median_cont') }}
{%- endmacro %}

{% macro postgres__median_cont(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{#- Spark's exact percentile() interpolates as percentile_cont does. -#}
{% macro spark__median_cont(expr) -%}
    percentile({{ expr }}, 0.5)
{%- endmacro %}

{#- The n-th element (1-based, as in SQL's arrays) of an array. -#}
{% macro array_element(array, n) -%}
    {{ return(adapter.dispatch('array_element', 'fares')(array, n)) }}
{%- endmacro %}

{% macro default__array_element(array, n) -%}
    {{ raise_unsupported_adapter('array_element') }}
{%- endmacro %}

{% macro postgres__array_element(array, n) -%}
    {{ array }}[{{ n }}]
{%- endmacro %}

{% macro spark__array_element(array, n) -%}
    element_at({{ array }}, {{ n }})
{%- endmacro %}

{#- The first day of a 'YYYY-MM' month text, as a date. -#}
{% macro month_start(month_text) -%}
    {{ return(adapter.dispatch('month_start', 'fares')(month_text)) }}
{%- endmacro %}

{% macro default__month_start(month_text) -%}
    {{ raise_unsupported_adapter('month_start') }}
{%- endmacro %}

{% macro postgres__month_start(month_text) -%}
    to_date({{ month_text }}, 'YYYY-MM')
{%- endmacro %}

{% macro spark__month_start(month_text) -%}
    to_date({{ month_text }}, 'yyyy-MM')
{%- endmacro %}

{#- The 'YYYY-MM' month of a timestamp or date, as text. -#}
{% macro month_text_of(ts) -%}
    {{ return(adapter.dispatch('month_text_of', 'fares')(ts)) }}
{%- endmacro %}

{% macro default__month_text_of(ts) -%}
    {{ raise_unsupported_adapter('month_text_of') }}
{%- endmacro %}

{% macro postgres__month_text_of(ts) -%}
    to_char({{ ts }}, 'YYYY-MM')
{%- endmacro %}

{% macro spark__month_text_of(ts) -%}
    date_format({{ ts }}, 'yyyy-MM')
{%- endmacro %}

{#- The number of days in the month of a date. -#}
{% macro days_in_month(date_expr) -%}
    {{ return(adapter.dispatch('days_in_month', 'fares')(date_expr)) }}
{%- endmacro %}

{% macro default__days_in_month(date_expr) -%}
    {{ raise_unsupported_adapter('days_in_month') }}
{%- endmacro %}

{% macro postgres__days_in_month(date_expr) -%}
    extract(day from ({{ date_expr }} + interval '1 month' - interval '1 day'))
{%- endmacro %}

{% macro spark__days_in_month(date_expr) -%}
    day(last_day({{ date_expr }}))
{%- endmacro %}

{#- Seconds from one timestamp to another, as a double (fractions of a second kept). -#}
{% macro seconds_between(start, end) -%}
    {{ return(adapter.dispatch('seconds_between', 'fares')(start, end)) }}
{%- endmacro %}

{% macro default__seconds_between(start, end) -%}
    {{ raise_unsupported_adapter('seconds_between') }}
{%- endmacro %}

{% macro postgres__seconds_between(start, end) -%}
    date_part('epoch', {{ end }} - {{ start }})
{%- endmacro %}

{% macro spark__seconds_between(start, end) -%}
    (cast(unix_micros({{ end }}) - unix_micros({{ start }}) as double) / 1000000.0)
{%- endmacro %}

{#- The hour of a timestamp (0-23), as an integer. PostgreSQL's extract() returns numeric (slow to compute and to
    sort on, millions of times per month); date_part() returns a double. -#}
{% macro hour_of(ts) -%}
    {{ return(adapter.dispatch('hour_of', 'fares')(ts)) }}
{%- endmacro %}

{% macro default__hour_of(ts) -%}
    {{ raise_unsupported_adapter('hour_of') }}
{%- endmacro %}

{% macro postgres__hour_of(ts) -%}
    date_part('hour', {{ ts }})::integer
{%- endmacro %}

{% macro spark__hour_of(ts) -%}
    hour({{ ts }})
{%- endmacro %}

{#- A 64-bit hash of a value (as text on PostgreSQL), for comparing many values cheaply (test unique_key). -#}
{% macro hash64(expr) -%}
    {{ return(adapter.dispatch('hash64', 'fares')(expr)) }}
{%- endmacro %}

{% macro default__hash64(expr) -%}
    {{ raise_unsupported_adapter('hash64') }}
{%- endmacro %}

{% macro postgres__hash64(expr) -%}
    hashtextextended(({{ expr }})::text, 0)
{%- endmacro %}

{% macro spark__hash64(expr) -%}
    xxhash64({{ expr }})
{%- endmacro %}

{#- One integer for an ordered zone pair (pickup * 1000 + dropoff; dim_zone_pairs.zone_pair_key, whose unique test
    proves it one-to-one over the zones): a join of a month of trips to dim_zone_pairs on it is a hash join. On the
    two zone columns PostgreSQL estimates each probe to meet 1/265 of the pairs (one column's distinct values at a
    time) and sorts the month for a merge join instead (a count of ml_fare_training's real month: 27 -> 15 s). -#}
{% macro zone_pair_key(pickup_zone_id, dropoff_zone_id) -%}
    ({{ pickup_zone_id }} * 1000 + {{ dropoff_zone_id }})
{%- endmacro %}

{#- One 64-bit integer for a trip's group in the zone pair x pickup hour aggregations: its file month and service when
    given, its pickup and dropoff zones and its pickup hour,
    ((yyyymm * 8 + service code) * 1000000 + zone_pair_key) * 100 + hour. The aggregations group by this key
    alone and take the group's columns back with min(): PostgreSQL sorts a month of trips for their medians, and a sort
    on one integer, without the text and integer columns after it that every pair of trips of one group is equal on,
    sorts narrower rows and compares less (zone_pair_hourly_fares on a real month: 38 -> 23.5 s, outputs identical).
    One-to-one: months are 'YYYY-MM', zone ids below 1000 (dim_zones: 1-265), hours 0-23, and the services are the
    closed set int_trips_unioned derives (two names outside it would share code 7: none can arise, and the
    `service_known` rule on int_trips_kept, a test that holds back its children, checks it). -#}
{% macro trip_group_key(pickup_zone_id, dropoff_zone_id, hour, source_month=none, service=none) -%}
    (((
    {%- if source_month is not none %}{{ cast_as("replace(" ~ source_month ~ ", '-', '')", 'bigint') }}{% else %}{{ cast_as('0', 'bigint') }}{% endif %} * 8
    + {% if service is not none %}{{ service_code(service) }}{% else %}0{% endif %}) * 1000000
    + {{ zone_pair_key(pickup_zone_id, dropoff_zone_id) }}) * 100 + {{ hour }})
{%- endmacro %}

{#- The services as small integers, for trip_group_key. -#}
{% macro service_code(service) -%}
    case {{ service }} when 'taxi' then 1 when 'uber' then 2 when 'lyft' then 3 when 'via' then 4 when 'juno' then 5
        when 'unknown' then 6 else 7 end
{%- endmacro %}

{#- ISO day of the week: 1 = Monday ... 7 = Sunday. -#}
{% macro iso_day_of_week(ts) -%}
    {{ return(adapter.dispatch('iso_day_of_week', 'fares')(ts)) }}
{%- endmacro %}

{% macro default__iso_day_of_week(ts) -%}
    {{ raise_unsupported_adapter('iso_day_of_week') }}
{%- endmacro %}

{% macro postgres__iso_day_of_week(ts) -%}
    date_part('isodow', {{ ts }})
{%- endmacro %}

{% macro spark__iso_day_of_week(ts) -%}
    extract(dayofweek_iso from {{ ts }})
{%- endmacro %}

{#- A unix epoch in seconds (number or numeric text, e.g. dlt's load id) as a timestamp. -#}
{% macro epoch_to_timestamp(expr) -%}
    {{ return(adapter.dispatch('epoch_to_timestamp', 'fares')(expr)) }}
{%- endmacro %}

{% macro default__epoch_to_timestamp(expr) -%}
    {{ raise_unsupported_adapter('epoch_to_timestamp') }}
{%- endmacro %}

{% macro postgres__epoch_to_timestamp(expr) -%}
    to_timestamp({{ expr }}::double precision)
{%- endmacro %}

{% macro spark__epoch_to_timestamp(expr) -%}
    timestamp_seconds(cast({{ expr }} as double))
{%- endmacro %}

{#- Rows from columns: for each row of `rows` (SQL expressions over `relation`), one output row named `alias`
    with `columns`. PostgreSQL: a lateral VALUES list; Spark: LATERAL VIEW stack(). -#}
{% macro unpivot_rows(relation, alias, columns, rows) -%}
    {{ return(adapter.dispatch('unpivot_rows', 'fares')(relation, alias, columns, rows)) }}
{%- endmacro %}

{% macro default__unpivot_rows(relation, alias, columns, rows) -%}
    {{ raise_unsupported_adapter('unpivot_rows') }}
{%- endmacro %}

{% macro postgres__unpivot_rows(relation, alias, columns, rows) -%}
    from {{ relation }}
    cross join lateral (
        values
        {%- for row in rows %}
            ({{ row | join(", ") }}){{ "," if not loop.last }}
        {%- endfor %}
    ) as {{ alias }} ({{ columns | join(", ") }})
{%- endmacro %}

{% macro spark__unpivot_rows(relation, alias, columns, rows) -%}
    from {{ relation }}
    lateral view stack({{ rows | length }},
        {%- for row in rows %}
            {{ row | join(", ") }}{{ "," if not loop.last }}
        {%- endfor %}
    ) {{ alias }} as {{ columns | join(", ") }}
{%- endmacro %}

{#- ANALYZE after a build (fresh planner statistics on PostgreSQL); Spark plans from file sizes: nothing to do. -#}
{% macro analyze_relation(relation) -%}
    {{ return(adapter.dispatch('analyze_relation', 'fares')(relation)) }}
{%- endmacro %}

{% macro default__analyze_relation(relation) -%}
    {{ raise_unsupported_adapter('analyze_relation') }}
{%- endmacro %}

{% macro postgres__analyze_relation(relation) -%}
    analyze {{ relation }}
{%- endmacro %}

{% macro spark__analyze_relation(relation) -%}
{%- endmacro %}

{#- Contracts are written with PostgreSQL's type names; on Spark the empty-schema query that dbt compares a model
    against casts to the Spark names instead (text -> string, double precision -> double). -#}
{% macro spark__get_empty_schema_sql(columns) -%}
    {%- set translated = {} -%}
    {%- for name in columns -%}
        {%- set col = columns[name].copy() if columns[name].copy is defined else columns[name] -%}
        {%- do col.update({"data_type": sql_type(col["data_type"])}) if col.get("data_type") -%}
        {%- do translated.update({name: col}) -%}
    {%- endfor -%}
    {{ return(dbt.default__get_empty_schema_sql(translated)) }}
{%- endmacro %}

{#- A value read from the row of `periods` ([valid_from, valid_to)) in force at `ts`. PostgreSQL: a scalar subquery,
    so a reader that does not select the column never touches the periods (a range join ran for every trip). Spark
    takes outer references only in a subquery's WHERE clause: there the periods are joined by period_join(), placed
    after the model's other joins, and the value is read from the joined row. -#}
{% macro period_value(expr, periods, ts) -%}
    {{ return(adapter.dispatch('period_value', 'fares')(expr, periods, ts)) }}
{%- endmacro %}

{% macro default__period_value(expr, periods, ts) -%}
    {{ raise_unsupported_adapter('period_value') }}
{%- endmacro %}

{% macro postgres__period_value(expr, periods, ts) -%}
    (
        select {{ expr }}
        from {{ periods }}
        where {{ ts }} >= {{ periods }}.valid_from
            and ({{ periods }}.valid_to is null or {{ ts }} < {{ periods }}.valid_to)
    )
{%- endmacro %}

{% macro spark__period_value(expr, periods, ts) -%}
    {{ expr }}
{%- endmacro %}

{#- The join period_value() needs on Spark; nothing on PostgreSQL. -#}
{% macro period_join(periods, ts) -%}
    {{ return(adapter.dispatch('period_join', 'fares')(periods, ts)) }}
{%- endmacro %}

{% macro default__period_join(periods, ts) -%}
    {{ raise_unsupported_adapter('period_join') }}
{%- endmacro %}

{% macro postgres__period_join(periods, ts) -%}
{%- endmacro %}

{% macro spark__period_join(periods, ts) -%}
    left join {{ periods }}
        on {{ ts }} >= {{ periods }}.valid_from
        and ({{ periods }}.valid_to is null or {{ ts }} < {{ periods }}.valid_to)
{%- endmacro %}

