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
