{#-
    Incremental builds by file month, planned in plain sight.

    Which months a `dbt build` (re)builds:
    - the var `trip_months` when it is given: the transform stage (fares.chain.stages.run_transform) passes the
      months the ledger (ops.ingested_files) says were loaded or reloaded since their last build, as
      {month: raw load id};
      an analyst may pass a list of months (`--vars '{trip_months: [2024-02]}'`) to rebuild exactly those;
    - otherwise (a plain `dbt build`) the months whose raw load is newer than their last complete build
      (intermediate.trip_month_builds), read from raw's month partitions;
    - every loaded month under --full-refresh (which refuses the var: one or the other).
    `plan_trip_months` (on-run-start) writes that plan into intermediate.trip_month_builds and logs it; the incremental
    trip models build exactly those months (`trip_months_filter`), and `finish_trip_months` (on-run-end) marks them
    built once every incremental trip model succeeded in this invocation.

    Which months the trip-grain tests check: each such test says so in its own config, `where: "{{
    var('tested_months_where') }}"` (dbt_project.yml), which reads intermediate.trip_months_tested, written here
    when dbt starts: in `dbt build`/`dbt run` the months planned (all under --full-refresh), in `dbt test` every built
    month; `--vars '{test_all_months: true}'` tests every built month in a build too. No dbt macro is overridden.
-#}

{% macro trip_month_builds() -%}
    {#- Spark has no database level (schema = database there). -#}
    {{ return(api.Relation.create(database=target.database if target.database is defined else none,
                                  schema='intermediate', identifier='trip_month_builds')) }}
{%- endmacro %}

{#- The months this invocation's trip-grain tests check (one column, source_month), rewritten at its start. -#}
{% macro trip_months_tested_relation() -%}
    {{ return(api.Relation.create(database=target.database if target.database is defined else none,
                                  schema='intermediate', identifier='trip_months_tested')) }}
{%- endmacro %}


{#- {month: newest load id over the yellow and HVFHV partitions of that month} -#}
{% macro raw_month_loads() %}
    {{ return(adapter.dispatch('raw_month_loads', 'fares')()) }}
{% endmacro %}

{% macro default__raw_month_loads() %}
    {{ raise_unsupported_adapter('raw_month_loads') }}
{% endmacro %}

{% macro postgres__raw_month_loads() %}
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


{#- on-run-start: decide which months this invocation builds, and which months its trip-grain tests check. -#}
{% macro plan_trip_months() %}
    {% if not execute or flags.WHICH not in ('build', 'run', 'test') %}
        {{ return('') }}
    {% endif %}
    {% set builds = trip_month_builds() %}
    {% do prepare_trip_month_builds(builds) %}
    {#- dbt listed the schema's relations before this hook: without this, a first build's `planned_months` would not
        see the table just created and build no month at all. -#}
    {% do adapter.cache_added(builds.incorporate(type='table')) %}
    {% do adapter.cache_added(trip_months_tested_relation().incorporate(type='table')) %}
    {% set built = [] %}
    {% for row in run_query("select distinct source_month from " ~ builds ~ " where built order by 1").rows %}
        {% do built.append(row[0]) %}
    {% endfor %}
    {% set planned = [] %}
    {% if flags.WHICH in ('build', 'run') %}
        {% set plan = trip_month_plan(built) %}
        {% do planned.extend(plan.months) %}
        {% if planned %}
            {% do insert_planned_months(builds, planned, plan.loads) %}
        {% endif %}
        {% do log("trip months to build: [" ~ planned | join(", ") ~ "] (" ~ plan.why ~ ")", info=true) %}
    {% endif %}
    {% set tested = (built + planned) | unique | sort | list
                    if flags.WHICH == 'test' or var('test_all_months', false) else planned %}
    {% do write_tested_months(tested) %}
    {% do log("trip months tested: [" ~ tested | join(", ") ~ "]", info=true) %}
    {{ return('') }}
{% endmacro %}


{#- {months: [...], loads: {month: raw load id}, why: text}: the var trip_months, else what raw holds that is new. -#}
{#- A first build (nothing built yet) builds every month whatever the var says, so it plans them all. -#}
{% macro trip_month_plan(built) %}
    {% set given = var('trip_months', none) %}
    {% if given is not none and flags.FULL_REFRESH %}
        {% do exceptions.raise_compiler_error("--full-refresh rebuilds every month: do not also pass the trip_months var") %}
    {% endif %}
    {% if not built %}
        {% set given = none %}
    {% endif %}
    {% if given is mapping %}
        {% set months = given.keys() | map('string') | sort | list %}
        {% set loads = {} %}
        {% for month in months %}
            {% do loads.update({month: given[month] | string}) %}
        {% endfor %}
        {{ return({'months': months, 'loads': loads, 'why': 'the trip_months var: ' ~ (months | length) ~ ' month(s)'}) }}
    {% endif %}
    {% set raw = raw_month_loads() %}
    {% if given is not none %}
        {% set months = given | map('string') | select('in', raw.keys() | list) | sort | list %}
        {{ return({'months': months, 'loads': raw,
                   'why': 'the trip_months var, ' ~ (months | length) ~ ' of them loaded'}) }}
    {% endif %}
    {% set done = {} %}
    {% if not flags.FULL_REFRESH %}
        {% set builds = trip_month_builds() %}
        {% for row in run_query("select source_month, max(raw_load_id) from " ~ builds ~ " where built group by 1").rows %}
            {% do done.update({row[0]: row[1]}) %}
        {% endfor %}
    {% endif %}
    {% set months = [] %}
    {% for month in raw.keys() | sort %}
        {% if month not in done or raw[month] > done[month] %}
            {% do months.append(month) %}
        {% endif %}
    {% endfor %}
    {{ return({'months': months, 'loads': raw,
               'why': (months | length) ~ ' of ' ~ (raw | length) ~ ' loaded months'
                      ~ (', --full-refresh' if flags.FULL_REFRESH else ', new or reloaded')}) }}
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
    {%- if this is not none and builds_planned_months() -%}
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


{#- Whether this model builds only the planned months: an incremental model on an incremental run (is_incremental()),
    or the stored trips on PostgreSQL (the month_partitions materialization, macros/month_partitions.sql) when their
    partitioned table exists and no --full-refresh was asked; a first or full build reads every month. -#}
{% macro builds_planned_months() -%}
    {%- if not execute -%}
        {{ return(false) }}
    {%- endif -%}
    {%- if config.get('materialized') == 'month_partitions' -%}
        {{ return(not should_full_refresh() and is_month_partitioned(this)) }}
    {%- endif -%}
    {{ return(is_incremental()) }}
{%- endmacro %}


{#- pre-hook of an incremental month-grain model: drop the planned months' rows before they are inserted again. -#}
{% macro delete_planned_months() -%}
    {{ return(adapter.dispatch('delete_planned_months', 'fares')()) }}
{%- endmacro %}

{% macro default__delete_planned_months() -%}
    {{ raise_unsupported_adapter('delete_planned_months') }}
{%- endmacro %}

{#- Spark: the planned months' partitions are overwritten by the insert (insert_overwrite), nothing to delete. -#}
{% macro spark__delete_planned_months() -%}
{%- endmacro %}

{% macro postgres__delete_planned_months() -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ trip_months_filter() }}
    {%- else -%}
        select 1
    {%- endif -%}
{%- endmacro %}


{#- How an incremental trip model stores its planned months, in its own config() (dbt_project.yml and property
    files are read without the project's macros): PostgreSQL deletes them (delete_planned_months) and appends them
    again; Spark overwrites their partitions of a table partitioned by source_month (parquet tables have no delete).
    On Databricks the spark__ forms apply (see dialect.sql): dynamic partition overwrite there needs classic compute,
    not a SQL warehouse. -#}
{% macro fares_month_strategy() -%}
    {{ return(adapter.dispatch('fares_month_strategy', 'fares')()) }}
{%- endmacro %}

{% macro default__fares_month_strategy() -%}
    {{ raise_unsupported_adapter('fares_month_strategy') }}
{%- endmacro %}

{% macro postgres__fares_month_strategy() -%}
    {{ return('append') }}
{%- endmacro %}

{% macro spark__fares_month_strategy() -%}
    {{ return('insert_overwrite') }}
{%- endmacro %}

{#- The partition column of an incremental trip model: none on PostgreSQL (its months are deleted by a filter), and
    source_month on Spark, the partitions insert_overwrite replaces (without it, it would replace the whole table). -#}
{% macro fares_month_partition_by() -%}
    {{ return(adapter.dispatch('fares_month_partition_by', 'fares')()) }}
{%- endmacro %}

{% macro default__fares_month_partition_by() -%}
    {{ raise_unsupported_adapter('fares_month_partition_by') }}
{%- endmacro %}

{% macro postgres__fares_month_partition_by() -%}
    {{ return(none) }}
{%- endmacro %}

{% macro spark__fares_month_partition_by() -%}
    {{ return('source_month') }}
{%- endmacro %}


{#- on-run-end: the planned months are built once every incremental trip model succeeded in this invocation. -#}
{% macro finish_trip_months(results) %}
    {% if not execute or flags.WHICH not in ('build', 'run') %}
        {{ return('') }}
    {% endif %}
    {% set incremental = graph.nodes.values() | selectattr('resource_type', 'equalto', 'model')
                         | selectattr('config.materialized', 'in', ['incremental', 'month_partitions'])
                         | map(attribute='unique_id') | list %}
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


{#- Rewrite intermediate.trip_months_tested with `months` (one SQL for both engines). -#}
{% macro write_tested_months(months) %}
    {% set tested = trip_months_tested_relation() %}
    {% do run_query("truncate table " ~ tested) %}
    {% if months %}
        {% do run_query("insert into " ~ tested ~ " (source_month) values ('" ~ months | join("'), ('") ~ "')") %}
    {% endif %}
    {#- statistics: PostgreSQL then plans the test's `in (select ...)` as the few months it is -#}
    {% do run_query(analyze_relation(tested)) if analyze_relation(tested) | trim %}
{% endmacro %}


{#-
    The bookkeeping SQL of intermediate.trip_month_builds, per adapter. PostgreSQL deletes unfinished plans and
    updates rows; Spark's parquet tables only append, so there a finished plan is a second row with built = true
    and an unfinished one is simply never marked (every reader filters on built or on this invocation's planned_at).
-#}
{#- Both bookkeeping tables: the plans (trip_month_builds) and the months tested (trip_months_tested). -#}
{% macro prepare_trip_month_builds(builds) %}
    {{ return(adapter.dispatch('prepare_trip_month_builds', 'fares')(builds)) }}
{% endmacro %}

{% macro default__prepare_trip_month_builds(builds) %}
    {{ raise_unsupported_adapter('prepare_trip_month_builds') }}
{% endmacro %}

{% macro postgres__prepare_trip_month_builds(builds) %}
    {% do run_query(
        "create schema if not exists " ~ builds.schema ~ ";"
        ~ " create table if not exists " ~ builds ~ " (source_month text not null, raw_load_id text,"
        ~ " planned_at text not null, built boolean not null default false);"
        ~ " delete from " ~ builds ~ " where not built;"
        ~ " create table if not exists " ~ trip_months_tested_relation() ~ " (source_month text);"
    ) %}
{% endmacro %}

{% macro spark__prepare_trip_month_builds(builds) %}
    {% do run_query("create schema if not exists " ~ builds.schema) %}
    {% do run_query("create table if not exists " ~ builds ~ " (source_month string, raw_load_id string,"
                    ~ " planned_at string, built boolean) using parquet") %}
    {% do run_query("create table if not exists " ~ trip_months_tested_relation() ~ " (source_month string) using parquet") %}
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
    {{ raise_unsupported_adapter('mark_months_built') }}
{% endmacro %}

{% macro postgres__mark_months_built(builds) %}
    {% do run_query("update " ~ builds ~ " set built = true where planned_at = '" ~ run_started_at ~ "'") %}
{% endmacro %}

{% macro spark__mark_months_built(builds) %}
    {% do run_query("insert into " ~ builds ~ " select source_month, raw_load_id, planned_at, true from " ~ builds
                    ~ " where planned_at = '" ~ run_started_at ~ "' and not built") %}
{% endmacro %}

{#-
    Spark: the newest load id per month, without reading a row. fares passes them from its ledger (the var
    lake_month_loads, {month: load id}, beside lake_ddl); dbt run by hand reads them off the catalog: each month
    partition of a raw trip table points at its load's version folder, named after the load id
    (`<table>/source_month=<month>/<load id>`, fares.engines.spark_lake).
-#}
{% macro spark__raw_month_loads() %}
    {% set given = var('lake_month_loads', none) %}
    {% if given is mapping %}
        {% set loads = {} %}
        {% for month, load_id in given.items() %}
            {% do loads.update({month | string: load_id | string}) %}
        {% endfor %}
        {{ return(loads) }}
    {% endif %}
    {% set raw_schema = var('raw_schema', 'raw') %}
    {% set loads = {} %}
    {% for table in ['yellow_trips', 'fhvhv_trips'] %}
        {% if adapter.get_relation(database=none, schema=raw_schema, identifier=table) is not none %}
            {% for part in run_query("show partitions " ~ raw_schema ~ "." ~ table).rows %}
                {% set month = part[0].split('=')[1] %}
                {% set described = run_query("describe table extended " ~ raw_schema ~ "." ~ table
                                             ~ " partition (source_month = '" ~ month ~ "')") %}
                {#- the partition's Location comes before the table's -#}
                {% set found = namespace(location=none) %}
                {% for row in described.rows if row[0] == 'Location' and found.location is none %}
                    {% set found.location = row[1] %}
                {% endfor %}
                {% set load_id = found.location.rstrip('/').split('/')[-1] %}
                {% if month not in loads or load_id > loads[month] %}
                    {% do loads.update({month: load_id}) %}
                {% endif %}
            {% endfor %}
        {% endif %}
    {% endfor %}
    {{ return(loads) }}
{% endmacro %}


{#-
    `dbt run-operation show_trip_months`: the month plan a plain `dbt build` would make, without building. For each
    loaded month, its current raw load id and the load its last complete build read; one line of JSON
    ("trip months: {month: {"raw": id, "built": id or null}}"), then a line per month that a build would rebuild.
-#}
{% macro show_trip_months() %}
    {% set raw = raw_month_loads() %}
    {% set done = {} %}
    {% set builds = trip_month_builds() %}
    {% if adapter.get_relation(builds.database, builds.schema, builds.identifier) is not none %}
        {% for row in run_query("select source_month, max(raw_load_id) from " ~ builds ~ " where built group by 1").rows %}
            {% do done.update({row[0]: row[1]}) %}
        {% endfor %}
    {% endif %}
    {% set months = {} %}
    {% for month in raw.keys() | sort %}
        {% do months.update({month: {'raw': raw[month], 'built': done.get(month)}}) %}
    {% endfor %}
    {% do log("trip months: " ~ tojson(months), info=true) %}
    {% for month, loads in months.items() if loads.built is none or loads.raw > loads.built %}
        {% do log(month ~ ": a build would rebuild it (raw load " ~ loads.raw ~ ", built from "
                  ~ (loads.built or "nothing") ~ ")", info=true) %}
    {% endfor %}
{% endmacro %}
