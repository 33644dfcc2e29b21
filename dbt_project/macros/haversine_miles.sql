{#- Great-circle distance in miles between two WGS84 points; null when either point is null. -#}
{% macro haversine_miles(lat1, lon1, lat2, lon2) -%}
    (2 * 3958.8 * asin(least(1.0, sqrt(
        power(sin(radians({{ lat2 }} - {{ lat1 }}) / 2), 2)
        + cos(radians({{ lat1 }})) * cos(radians({{ lat2 }})) * power(sin(radians({{ lon2 }} - {{ lon1 }}) / 2), 2)
    ))))
{%- endmacro %}
