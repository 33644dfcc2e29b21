{#- The Spark engine's lake, registered by dbt itself before anything runs: fares passes the statements (create the
    raw tables over the lake's parquet folders, point each month's partition at its files) as var lake_ddl, so dbt
    needs no session of fares' and any Spark target (dbt's own session, a Thrift server) sees the same tables. -#}
{% macro fares_register_lake() %}
  {{ return(adapter.dispatch('fares_register_lake')()) }}
{% endmacro %}

{% macro default__fares_register_lake() %}
  {{ exceptions.raise_compiler_error("fares: fares_register_lake has no form for adapter '" ~ target.type ~ "'") }}
{% endmacro %}

{#- PostgreSQL: raw is loaded by dlt into the database itself; nothing to register. -#}
{% macro postgres__fares_register_lake() %}
{% endmacro %}

{% macro spark__fares_register_lake() %}
  {% if execute %}
    {% for statement in var('lake_ddl', []) %}
      {% do run_query(statement) %}
    {% endfor %}
  {% endif %}
{% endmacro %}
