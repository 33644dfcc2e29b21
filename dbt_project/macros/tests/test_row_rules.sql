{#-
    Generic model test: several row-by-row rules checked in one pass over the relation.
    `rules` maps a rule's name to a boolean SQL expression that must hold on every row (false or null fails).
    Returns one row per failing rule, with its name and how many rows fail it; the test's failure count is the sum,
    so `dbt build` reports every failing row, and a stored failure (`--store-failures`) names each rule.
-#}
{% test row_rules(model, rules) %}
    {{ config(fail_calc='coalesce(sum(failing_rows), 0)') }}
    with

    counted as (

        select
            {%- for name, condition in rules.items() %}
            sum(case when coalesce(({{ condition }}), false) then 0 else 1 end) as {{ name }}{{ "," if not loop.last }}
            {%- endfor %}
        from {{ model }}

    ),

    per_rule as (

        {%- for name in rules.keys() %}
        select '{{ name }}' as rule_name, coalesce({{ name }}, 0) as failing_rows from counted
        {{ "union all" if not loop.last }}
        {%- endfor %}

    )

    select * from per_rule
    where failing_rows > 0
{% endtest %}
