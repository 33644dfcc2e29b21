{#-
    The stored trips on PostgreSQL (int_trips_kept): a table partitioned by list on source_month, one partition per
    file month, each month written once.

    Why not dbt's incremental materialization: on an incremental run it first writes the model's rows into a temporary
    table (`create table as`) and then the strategy copies them into the target (`insert ... select`), so every
    nightly build wrote the new month's ~22M kept trips twice (a real month: 93 s against 68 s for its first build;
    the second write alone 21 s). Here a month is written once, by a parallel `create table as` into a table of its
    own, then swapped in as the month's partition, as the raw months are (fares.engines.pg_partitions.swap_in_month):
    in one transaction the month's old partition is dropped and the new one attached (PostgreSQL checks that every
    row belongs to the month while attaching: a scan, no copy). The months of other loads are not touched.

    Which months: on an incremental run, the months this invocation planned (planned_months(), the same months
    trip_months_filter() selects in the model); on a first build, under --full-refresh, or when the existing relation
    is not partitioned (a view or plain table left by an older fares), every month loaded in raw, each into its own
    partition after the old relation is dropped. A change of the model's columns fails an incremental run, as
    on_schema_change: fail does (a --full-refresh rebuilds the table with the new columns).

    Spark keeps dbt's incremental materialization with insert_overwrite (one write there already); the model picks
    its materialization by adapter (fares_trips_materialization()). This is the project's own materialization under
    its own name: no dbt macro is overridden.
-#}

{% materialization month_partitions, adapter='postgres' %}
    {%- set target = this.incorporate(type='table') -%}
    {%- set existing = load_cached_relation(this) -%}
    {%- set full = should_full_refresh() or not is_month_partitioned(this) -%}
    {%- set months = (raw_month_loads().keys() | sort | list) if full else planned_months() -%}

    {{ run_hooks(pre_hooks, inside_transaction=False) }}
    {{ run_hooks(pre_hooks, inside_transaction=True) }}

    {% if full %}
        {% if existing is not none %}
            {% do log(this ~ ": rebuilt as month partitions (" ~ (months | length) ~ " month(s))", info=true) %}
            {% do adapter.drop_relation(existing) %}
        {% endif %}
        {%- set shape = this.incorporate(path={'identifier': this.identifier ~ '__shape'}, type='table') -%}
        {% call statement('create_parent') %}
            drop table if exists {{ shape }};
            create table {{ shape }} as select * from ({{ sql }}) as model_rows with no data;
            create table {{ target }} (like {{ shape }}) partition by list (source_month);
            drop table {{ shape }};
        {% endcall %}
    {% endif %}

    {#- Each month into a table of its own first (the expensive part, a parallel scan), then all swapped in. -#}
    {% for month in months %}
        {%- set incoming = month_partition(this, month, '__incoming') -%}
        {% call statement('write_' ~ month) %}
            drop table if exists {{ incoming }};
            create table {{ incoming }} as select * from ({{ sql }}) as model_rows where source_month = '{{ month }}';
        {% endcall %}
        {% if not full %}
            {% do check_month_columns(target, incoming) %}
        {% endif %}
    {% endfor %}

    {% call statement('main') %}
        {%- for month in months %}
            {%- set part = month_partition(this, month) %}
            drop table if exists {{ part }};
            alter table {{ month_partition(this, month, '__incoming') }} rename to {{ part.identifier }};
            alter table {{ target }} attach partition {{ part }} for values in ('{{ month }}');
        {%- else %}
            select 0 as months_written
        {%- endfor %}
    {% endcall %}

    {% do apply_grants(target, config.get('grants'), should_revoke=should_revoke(existing, full)) %}
    {% do persist_docs(target, model) %}

    {{ run_hooks(post_hooks, inside_transaction=True) }}
    {% do adapter.commit() %}
    {{ run_hooks(post_hooks, inside_transaction=False) }}

    {{ return({'relations': [target]}) }}
{% endmaterialization %}


{#- The partition of `relation` that holds `month` (int_trips_kept_m2024_01), or with `suffix` the table it is
    written into before it is swapped in. -#}
{% macro month_partition(relation, month, suffix='') -%}
    {{ return(relation.incorporate(path={'identifier': relation.identifier ~ '_m' ~ month | replace('-', '_') ~ suffix},
                                   type='table')) }}
{%- endmacro %}


{#- Whether `relation` is a table partitioned by month (relkind 'p'), what this materialization keeps. -#}
{% macro is_month_partitioned(relation) -%}
    {% set found = run_query("select c.relkind from pg_class as c inner join pg_namespace as n on n.oid = c.relnamespace"
                             ~ " where n.nspname = '" ~ relation.schema ~ "' and c.relname = '" ~ relation.identifier ~ "'") %}
    {{ return(found.rows | length > 0 and found.rows[0][0] == 'p') }}
{%- endmacro %}


{#- on_schema_change: fail, for a month about to be swapped in: its columns must be the table's. -#}
{% macro check_month_columns(target, incoming) %}
    {% set want = typed_columns(target) %}
    {% set have = typed_columns(incoming) %}
    {% if want != have %}
        {% do exceptions.raise_compiler_error(
            "The columns of " ~ target ~ " changed (stored: " ~ want | join(", ") ~ "; the model now: "
            ~ have | join(", ") ~ "): rebuild it with dbt build --full-refresh") %}
    {% endif %}
{% endmacro %}


{#- The columns of `relation` in order, each as "name type". -#}
{% macro typed_columns(relation) %}
    {% set columns = [] %}
    {% for column in adapter.get_columns_in_relation(relation) %}
        {% do columns.append(column.name ~ " " ~ column.data_type) %}
    {% endfor %}
    {{ return(columns) }}
{% endmacro %}


{#- The model's materialization, in its own config(): month partitions on PostgreSQL (above), dbt's incremental
    with insert_overwrite on Spark. -#}
{% macro fares_trips_materialization() -%}
    {{ return(adapter.dispatch('fares_trips_materialization', 'fares')()) }}
{%- endmacro %}

{% macro default__fares_trips_materialization() -%}
    {{ raise_unsupported_adapter('fares_trips_materialization') }}
{%- endmacro %}

{% macro postgres__fares_trips_materialization() -%}
    {{ return('month_partitions') }}
{%- endmacro %}

{% macro spark__fares_trips_materialization() -%}
    {{ return('incremental') }}
{%- endmacro %}
