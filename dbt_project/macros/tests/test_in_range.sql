{#- Generic test: every non-null value of the column lies in [min_value, max_value] (either bound may be omitted). -#}
{% test in_range(model, column_name, min_value=none, max_value=none, inclusive=true) %}
    {%- set low_op = ">=" if inclusive else ">" -%}
    {%- set high_op = "<=" if inclusive else "<" -%}
    select {{ column_name }} as out_of_range_value
    from {{ model }}
    where {{ column_name }} is not null
      and not (
        true
        {%- if min_value is not none %} and {{ column_name }} {{ low_op }} {{ min_value }}{% endif %}
        {%- if max_value is not none %} and {{ column_name }} {{ high_op }} {{ max_value }}{% endif %}
      )
{% endtest %}
