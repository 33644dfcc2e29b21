{#-
    The cleaning and outlier rules, in the order a removed trip is attributed to them (the first rule it fails).
    Each condition reads the columns of int_trips_flagged's `measured` step and is true when the trip must go.
    One list, used by int_trips_flagged (the flags) and cleaning_rule_counts (the counts per month and service).
-#}
{% macro outlier_rules() %}
    {{ return([
        {"name": "pickup_outside_file_month",
         "description": "The pickup is missing or falls outside the month of the file the trip came from.",
         "condition": "pickup_at is null or date_trunc('month', pickup_at) <> " ~ month_start('source_month')},
        {"name": "unknown_zone",
         "description": "Pickup or dropoff zone missing, or not a real zone (264 unknown, 265 outside NYC, anything outside 1-263).",
         "condition": "pickup_zone_id is null or dropoff_zone_id is null or pickup_zone_id not between 1 and 263 or dropoff_zone_id not between 1 and 263"},
        {"name": "rate_code_not_metered",
         "description": "Taxi rate code the tariff does not define (kept: " ~ var("taxi_rate_codes") | join(", ") ~ " = standard, JFK, Newark): Nassau/Westchester, negotiated, group ride, or unknown/missing.",
         "condition": "service = 'taxi' and (rate_code_id is null or rate_code_id not in (" ~ var("taxi_rate_codes") | join(", ") ~ "))"},
        {"name": "payment_disputed_or_free",
         "description": "Taxi payment type no charge (3), dispute (4) or voided (6): not what a rider pays.",
         "condition": "service = 'taxi' and payment_type in (3, 4, 6)"},
        {"name": "shared_ride",
         "description": "A shared (pooled) ride was requested or matched: priced per seat, not a comparable ride.",
         "condition": "is_shared"},
        {"name": "access_a_ride",
         "description": "An Access-a-Ride trip dispatched for the MTA: the rider pays the paratransit fare, not the app's.",
         "condition": "is_for_access_a_ride"},
        {"name": "fare_not_positive",
         "description": "What the rider pays is missing, zero or negative (voids, refunds, disputes).",
         "condition": "rider_fare is null or rider_fare <= 0"},
        {"name": "fare_absurd",
         "description": "What the rider pays is above $" ~ var("max_rider_fare") ~ ".",
         "condition": "rider_fare > " ~ var("max_rider_fare")},
        {"name": "distance_not_positive",
         "description": "Trip distance missing or zero miles.",
         "condition": "trip_miles is null or trip_miles <= 0"},
        {"name": "distance_too_long",
         "description": "Trip distance over " ~ var("max_trip_miles") ~ " miles.",
         "condition": "trip_miles > " ~ var("max_trip_miles")},
        {"name": "duration_too_short",
         "description": "Duration missing or under " ~ var("min_duration_minutes") ~ " minute(s) (dropoff before or at pickup included).",
         "condition": "duration_minutes is null or duration_minutes < " ~ var("min_duration_minutes")},
        {"name": "duration_too_long",
         "description": "Duration over " ~ var("max_duration_minutes") ~ " minutes.",
         "condition": "duration_minutes > " ~ var("max_duration_minutes")},
        {"name": "speed_too_high",
         "description": "Average speed over " ~ var("max_speed_mph") ~ " mph.",
         "condition": "speed_mph > " ~ var("max_speed_mph")},
        {"name": "fare_per_mile_outlier",
         "description": "Fare per mile outside the Tukey fences (" ~ var("fare_per_mile_fence_k") ~ " IQR) of ln(fare per mile) for the service and month, computed over the trips that pass every other rule.",
         "condition": "ln(fare_per_mile) < fare_per_mile_ln_low or ln(fare_per_mile) > fare_per_mile_ln_high"},
    ]) }}
{% endmacro %}


{#-
    The company behind a High-Volume For-Hire license number (the TLC's HV0002..HV0005), as a CASE over `license`:
    capitalised for staging ('Uber'), or lowercase as the service key the trips carry ('uber'). The lowercase form is
    its own CASE, not lower() of the other: PostgreSQL copies the expression into every rule that reads the service,
    and lower() is a locale-aware call per copy per trip.
-#}
{% macro hvfhs_company(license, lowercase=false) -%}
    {%- set companies = [('HV0002', 'Juno'), ('HV0003', 'Uber'), ('HV0004', 'Via'), ('HV0005', 'Lyft')] -%}
    case {{ license }}
        {%- for number, name in companies %}
        when '{{ number }}' then '{{ name | lower if lowercase else name }}'
        {%- endfor %}
        else '{{ "unknown" if lowercase else "Unknown" }}'
    end
{%- endmacro %}
