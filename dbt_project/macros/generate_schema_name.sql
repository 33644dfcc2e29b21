{#- Folders land in schemas named exactly staging / intermediate / marts (ARCHITECTURE.md), not <target>_<folder>. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
