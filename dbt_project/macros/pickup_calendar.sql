{#-
    The calendar parts of a pickup that fct_trips (for analysts) and ml_fare_training (model features) both carry, as
    select-list columns: the hour (0-23), the ISO day of week from 0 (Monday) to 6, whether it is a weekend, the
    month (1-12). One definition, so the two views cannot drift apart.
-#}
{% macro pickup_calendar_columns(ts) -%}
    {{ hour_of(ts) }} as pickup_hour,
    {{ cast_as('(' ~ iso_day_of_week(ts) ~ ' - 1)', 'integer') }} as pickup_dow,
    {{ iso_day_of_week(ts) }} >= 6 as is_weekend,
    {{ cast_as("date_part('month', " ~ ts ~ ")", 'integer') }} as pickup_month
{%- endmacro %}
