{#-
    Incremental builds by file month.

    Raw trips are partitioned by source_month, one dlt load per partition (ingestion/partitions.py), so the newest
    load id of each month can be read from the catalog and one row per partition, without scanning trips.
    At the start of every dbt invocation `plan_trip_months` writes the months to (re)build into
    intermediate.trip_month_builds: months whose raw load is newer than the last build that completed for them
    (a new month, or a reloaded one), or every month under --full-refresh. The incremental trip models build
    exactly those months (`trip_months_filter`), trip-grain tests check exactly those months, and
    `finish_trip_months` marks them built once every incremental trip model succeeded in this invocation.
-#}

{% macro trip_month_builds() -%}
    {#- Spark has no database level (schema = database there). -#}
    {{ return(api.Relation.create(database=target.database if target.database is defined else none,
                                  schema='intermediate', identifier='trip_month_builds')) }}
{%- endmacro %}


{#- {month: newest load id over the yellow and HVFHV partitions of that month} -#}
{% macro raw_month_loads() %}
    {{ return(adapter.dispatch('raw_month_loads', 'fares')()) }}
{% endmacro %}

{% macro default__raw_month_loads() %}
    {% set raw_schema = var('raw_schema', 'raw') %}
    {% set catalog %}
        select child.relname as partition_name,
               substring(pg_get_expr(child.relpartbound, child.oid) from '''([0-9]{4}-[0-9]{2})''') as source_month
        from pg_inherits as i
        inner join pg_class as parent on parent.oid = i.inhparent
        inner join pg_class as child on child.oid = i.inhrelid
        inner join pg_namespace as n on n.oid = parent.relnamespace
        where n.nspname = '{{ raw_schema }}' and parent.relname in ('yellow_trips', 'fhvhv_trips')
    {% endset %}
    {% set parts = run_query(catalog) %}
    {% set loads = {} %}
    {% if parts.rows | length > 0 %}
        {% set newest %}
            {% for row in parts.rows %}
            select '{{ row[1] }}' as source_month,
                   (select _dlt_load_id from {{ raw_schema }}.{{ adapter.quote(row[0]) }} limit 1) as load_id
            {{ "union all" if not loop.last }}
            {% endfor %}
        {% endset %}
        {% for row in run_query(newest).rows %}
            {% if row[1] is not none and (row[0] not in loads or row[1] > loads[row[0]]) %}
                {% do loads.update({row[0]: row[1]}) %}
            {% endif %}
        {% endfor %}
    {% endif %}
    {{ return(loads) }}
{% endmacro %}


{#- on-run-start: decide which months this invocation builds. -#}
{% macro plan_trip_months() %}
    {% if not execute or flags.WHICH not in ('build', 'run') %}
        {{ return('') }}
    {% endif %}
    {% set builds = trip_month_builds() %}
    {% do prepare_trip_month_builds(builds) %}
    {#- dbt listed the schema's relations before this hook: without this, a first build's `planned_months` would not
        see the table just created and its trip-grain tests would check no month at all. -#}
    {% do adapter.cache_added(builds.incorporate(type='table')) %}
    {% set done = {} %}
    {% if not flags.FULL_REFRESH %}
        {% for row in run_query("select source_month, max(raw_load_id) from " ~ builds ~ " where built group by 1").rows %}
            {% do done.update({row[0]: row[1]}) %}
        {% endfor %}
    {% endif %}
    {% set loads = raw_month_loads() %}
    {% set planned = [] %}
    {% for month in loads.keys() | sort %}
        {% if month not in done or loads[month] > done[month] %}
            {% do planned.append(month) %}
        {% endif %}
    {% endfor %}
    {% if planned %}
        {% do insert_planned_months(builds, planned, loads) %}
    {% endif %}
    {% do log("trip months to build: [" ~ planned | join(", ") ~ "] (" ~ (planned | length) ~ " of "
              ~ (loads | length) ~ " loaded months)", info=true) %}
    {{ return('') }}
{% endmacro %}


{#- The months this invocation builds (sorted); empty when nothing changed. -#}
{% macro planned_months() %}
    {% if not execute %}
        {{ return([]) }}
    {% endif %}
    {% set builds = trip_month_builds() %}
    {% if adapter.get_relation(builds.database, builds.schema, builds.identifier) is none %}
        {{ return([]) }}
    {% endif %}
    {% set rows = run_query("select distinct source_month from " ~ builds ~ " where planned_at = '"
                            ~ run_started_at ~ "' and not built order by 1").rows %}
    {{ return(rows | map(attribute=0) | list) }}
{% endmacro %}


{#- A where-clause for an incremental trip model: every month on a full build, else the planned months. -#}
{% macro trip_months_filter(column='source_month') -%}
    {#- `this` is unset in unit tests: they build the model from their given rows, as a full build. -#}
    {%- if this is not none and is_incremental() -%}
        {%- set months = planned_months() -%}
        {%- if months -%}
            {{ column }} in ({% for m in months %}'{{ m }}'{{ ", " if not loop.last }}{% endfor %})
        {%- else -%}
            false
        {%- endif -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#- pre-hook of an incremental trip model: drop the planned months' rows before they are inserted again. -#}
{% macro delete_planned_months() -%}
    {{ return(adapter.dispatch('delete_planned_months', 'fares')()) }}
{%- endmacro %}

{#- Spark: the planned months' partitions are overwritten by the insert (insert_overwrite), nothing to delete. -#}
{% macro spark__delete_planned_months() -%}
{%- endmacro %}

{% macro default__delete_planned_months() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ trip_months_filter() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- on-run-end: the planned months are built once every incremental trip model succeeded in this invocation. -#}
{% macro finish_trip_months(results) %}
    {% if not execute or flags.WHICH not in ('build', 'run') %}
        {{ return('') }}
    {% endif %}
    {% set incremental = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                         | selectattr('config.materialized', 'equalto', 'incremental') | map(attribute='unique_id') | list %}
    {% set succeeded = results | selectattr('status', 'equalto', 'success') | map(attribute='node.unique_id') | list %}
    {% set failed = results | selectattr('status', 'in', ['error', 'fail', 'skipped']) | list %}
    {% for node in incremental %}
        {% if node not in succeeded %}
            {% do log("trip months stay planned: " ~ node ~ " was not built in this invocation", info=true) %}
            {{ return('') }}
        {% endif %}
    {% endfor %}
    {% if failed %}
        {% do log("trip months stay planned: " ~ (failed | length) ~ " node(s) failed", info=true) %}
        {{ return('') }}
    {% endif %}
    {% set builds = trip_month_builds() %}
    {% do mark_months_built(builds) %}
    {{ return('') }}
{% endmacro %}


{#-
    Generic tests on trip-grain relations check the months this `dbt build` (re)built, not every month of history,
    so the nightly cost follows the new month. `dbt test`, or --vars '{test_all_months: true}', checks every month.
-#}
{% macro get_where_subquery(relation) -%}
    {%- set where = config.get('where', '') -%}
    {%- if flags.WHICH == 'build' and not var('test_all_months', false)
            and relation.identifier in var('trip_grain_relations') -%}
        {%- set months = planned_months() -%}
        {%- set month_where -%}
            {%- if months -%}source_month in ({% for m in months %}'{{ m }}'{{ ", " if not loop.last }}{% endfor %}){%- else -%}false{%- endif -%}
        {%- endset -%}
        {%- set where = month_where ~ (" and (" ~ where ~ ")" if where else "") -%}
    {%- endif -%}
    {%- if where -%}
        {%- do return("(select * from " ~ relation ~ " where " ~ where ~ ") dbt_subquery") -%}
    {%- else -%}
        {%- do return(relation) -%}
    {%- endif -%}
{%- endmacro %}


{#- For singular tests: the same restriction as a where-clause on a relation with source_month. -#}
{% macro tested_months_filter(column='source_month') -%}
    {%- if flags.WHICH == 'build' and not var('test_all_months', false) -%}
        {%- set months = planned_months() -%}
        {%- if months -%}
            {{ column }} in ({% for m in months %}'{{ m }}'{{ ", " if not loop.last }}{% endfor %})
        {%- else -%}
            false
        {%- endif -%}
    {%- else -%}
        true
    {%- endif -%}
{%- endmacro %}


{#-
    The bookkeeping SQL of intermediate.trip_month_builds, per adapter. PostgreSQL deletes unfinished plans and
    updates rows; Spark's parquet tables only append, so there a finished plan is a second row with built = true
    and an unfinished one is simply never marked (every reader filters on built or on this invocation's planned_at).
-#}
{% macro prepare_trip_month_builds(builds) %}
    {{ return(adapter.dispatch('prepare_trip_month_builds', 'fares')(builds)) }}
{% endmacro %}

{% macro default__prepare_trip_month_builds(builds) %}
    {% do run_query(
        "create schema if not exists " ~ builds.schema ~ ";"
        ~ " create table if not exists " ~ builds ~ " (source_month text not null, raw_load_id text,"
        ~ " planned_at text not null, built boolean not null default false);"
        ~ " delete from " ~ builds ~ " where not built;"
    ) %}
{% endmacro %}

{% macro spark__prepare_trip_month_builds(builds) %}
    {% do run_query("create schema if not exists " ~ builds.schema) %}
    {% do run_query("create table if not exists " ~ builds ~ " (source_month string, raw_load_id string,"
                    ~ " planned_at string, built boolean) using parquet") %}
{% endmacro %}

{#- One SQL for both engines: every column named and given (Spark's parquet tables have no column defaults). -#}
{% macro insert_planned_months(builds, planned, loads) %}
    {% set values = [] %}
    {% for month in planned %}
        {% do values.append("('" ~ month ~ "', '" ~ loads[month] ~ "', '" ~ run_started_at ~ "', false)") %}
    {% endfor %}
    {% do run_query("insert into " ~ builds ~ " (source_month, raw_load_id, planned_at, built) values "
                    ~ values | join(", ")) %}
{% endmacro %}

{% macro mark_months_built(builds) %}
    {{ return(adapter.dispatch('mark_months_built', 'fares')(builds)) }}
{% endmacro %}

{% macro default__mark_months_built(builds) %}
    {% do run_query("update " ~ builds ~ " set built = true where planned_at = '" ~ run_started_at ~ "'") %}
{% endmacro %}

{% macro spark__mark_months_built(builds) %}
    {% do run_query("insert into " ~ builds ~ " select source_month, raw_load_id, planned_at, true from " ~ builds
                    ~ " where planned_at = '" ~ run_started_at ~ "' and not built") %}
{% endmacro %}

{#- Spark: the newest load id per month from the lake's tables (one load per month partition there). -#}
{% macro spark__raw_month_loads() %}
    {% set raw_schema = var('raw_schema', 'raw') %}
    {% set parts = [] %}
    {% for table in ['yellow_trips', 'fhvhv_trips'] %}
        {% if adapter.get_relation(database=none, schema=raw_schema, identifier=table) is not none %}
            {% do parts.append("select source_month, max(_dlt_load_id) as load_id from " ~ raw_schema ~ "." ~ table
                               ~ " group by source_month") %}
        {% endif %}
    {% endfor %}
    {% set loads = {} %}
    {% if parts %}
        {% for row in run_query(parts | join(" union all ")).rows %}
            {% if row[1] is not none and (row[0] not in loads or row[1] > loads[row[0]]) %}
                {% do loads.update({row[0]: row[1]}) %}
            {% endif %}
        {% endfor %}
    {% endif %}
    {{ return(loads) }}
{% endmacro %}
