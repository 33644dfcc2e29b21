{#- Great-circle distance in miles between two WGS84 points; null when either point is null.
    (Not least(): PostgreSQL's least() skips nulls, which would turn a missing point into half the Earth.) -#}
{% macro haversine_miles(lat1, lon1, lat2, lon2) -%}
    {%- set chord -%}
        sqrt(
            power(sin(radians({{ lat2 }} - {{ lat1 }}) / 2), 2)
            + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }})) * power(sin(radians({{ lon2 }} - {{ lon1 }}) / 2), 2)
        )
    {%- endset -%}
    (2 * 3958.8 * asin(case when {{ chord }} > 1 then 1.0 else {{ chord }} end))
{%- endmacro %}
