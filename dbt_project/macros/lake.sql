{#-
    on-run-start, before the months are planned: the lake's raw tables in Spark's catalog. The Python side passes the
    statements as the var `lake_ddl` (a list of SQL strings: create the raw database, create each raw table over its
    files, add each month's partition), so a session or cluster whose catalog does not yet know the lake reads it
    before the first model. PostgreSQL's raw tables are the warehouse's own: nothing to register there.
-#}
{% macro fares_register_lake() -%}
    {{ return(adapter.dispatch('fares_register_lake', 'fares')()) }}
{%- endmacro %}

{% macro default__fares_register_lake() -%}
    {{ raise_unsupported_adapter('fares_register_lake') }}
{%- endmacro %}

{% macro postgres__fares_register_lake() -%}
    {{ return('') }}
{%- endmacro %}

{#- In the order given, each once; nothing while dbt only parses (`execute` is false then). -#}
{% macro spark__fares_register_lake() -%}
    {%- set statements = var('lake_ddl', []) or [] -%}
    {%- if statements is string or statements is mapping -%}
        {{ exceptions.raise_compiler_error("fares: the var lake_ddl must be a list of SQL statements, got: "
                                           ~ statements) }}
    {%- endif -%}
    {%- if execute -%}
        {%- for statement in statements -%}
            {%- do run_query(statement) -%}
        {%- endfor -%}
        {%- do log("lake: " ~ (statements | length) ~ " catalog statement(s) run", info=statements | length > 0) -%}
    {%- endif -%}
    {{ return('') }}
{%- endmacro %}
