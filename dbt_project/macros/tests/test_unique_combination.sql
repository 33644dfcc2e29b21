{#- Generic model test: the listed columns together identify a row (the grain of a summary table). -#}
{% test unique_combination(model, columns) %}
    select {{ columns | join(", ") }}, count(*) as rows_with_this_key
    from {{ model }}
    group by {{ columns | join(", ") }}
    having count(*) > 1
{% endtest %}
