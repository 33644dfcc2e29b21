{#- The charges of the rate card (seeds/taxi_rate_card.csv), one column each in taxi_tariff_periods. -#}
{% macro taxi_rate_card_charges() %}
    {{ return(["initial_charge", "unit_charge", "night_surcharge", "rush_hour_surcharge", "mta_tax",
               "improvement_surcharge", "congestion_surcharge", "airport_access_fee", "jfk_flat_fare",
               "jfk_rush_hour_surcharge", "newark_surcharge", "laguardia_surcharge", "congestion_relief_zone_fee"]) }}
{% endmacro %}

{#-
    What the yellow-taxi meter charges (dollars, before tolls and tip) for a trip of `miles` and `minutes` starting at
    clock hour `hour` (0-23) on day `dow` (0 = Monday), under the tariff row `tariff` (taxi_tariff_periods) and the
    zone-pair flags `pair` (dim_zone_pairs). One definition, mirrored line by line by fares.ml.tariff.meter_fare and
    checked against the same hand-computed fares (unit test taxi_meter_fare_follows_each_tariff_period).
    - Meter: initial charge + unit charge x units; units = 5 per mile plus one per minute slower than 12 mph
      (minutes beyond miles x 5), the meter's distance-or-time rule applied to a whole trip.
    - Night (20:00-06:00) and weekday rush hour (16:00-20:00) surcharges; legal holidays are not modelled.
    - JFK <-> Manhattan: the flat fare plus its weekday 16:00-20:00 surcharge instead of meter, night and rush hour.
    - Newark: meter + Newark surcharge, no MTA tax (the trip ends outside the MTA district);
      LaGuardia: + its surcharge to and from; airport access fee on pickups at JFK and LaGuardia.
    - Everyone: improvement surcharge; the congestion surcharge and the relief-zone fee as expected values: the amount
      times the pair's incidence (dim_zone_pairs.congestion_incidence, relief_zone_incidence: the share of its trips
      that paid, a trip passing through included, or 1/0 by the zone lists where the pair has too few trips). The
      congestion surcharge only on trips that begin and end in New York State (NYC 311,
      https://portal.311.nyc.gov/article/?kanumber=KA-03191): never to Newark.
-#}
{% macro taxi_meter_fare(tariff, pair, miles, minutes, hour, dow) -%}
    {%- set is_rush = "(" ~ dow ~ " < 5 and " ~ hour ~ " >= 16 and " ~ hour ~ " < 20)" -%}
    {%- set is_night = "(" ~ hour ~ " >= 20 or " ~ hour ~ " < 6)" -%}
    (
        case
            when {{ pair }}.is_jfk_manhattan then
                {{ tariff }}.jfk_flat_fare
                + case when {{ is_rush }} then {{ tariff }}.jfk_rush_hour_surcharge else 0 end
            else
                {{ tariff }}.initial_charge
                + {{ tariff }}.unit_charge * (5 * {{ miles }} + greatest({{ minutes }} - 5 * {{ miles }}, 0))
                + case when {{ is_night }} then {{ tariff }}.night_surcharge else 0 end
                + case when {{ is_rush }} then {{ tariff }}.rush_hour_surcharge else 0 end
                + case when {{ pair }}.is_newark_dropoff then {{ tariff }}.newark_surcharge else 0 end
                + case when {{ pair }}.is_laguardia_trip then {{ tariff }}.laguardia_surcharge else 0 end
        end
        + case when {{ pair }}.is_newark_dropoff then 0 else {{ tariff }}.mta_tax end
        + {{ tariff }}.improvement_surcharge
        + case when {{ pair }}.is_newark_dropoff then 0
            else {{ pair }}.congestion_incidence * {{ tariff }}.congestion_surcharge end
        + {{ pair }}.relief_zone_incidence * {{ tariff }}.congestion_relief_zone_fee
        + case when {{ pair }}.is_airport_fee_pickup then {{ tariff }}.airport_access_fee else 0 end
    )
{%- endmacro %}
