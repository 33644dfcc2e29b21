"""Fare models: features, training, evaluation, registry, prediction and the run report; reads marts only, never raw."""

from __future__ import annotations

SERVICES: tuple[str, ...] = ("taxi", "uber")
# The ml_fare_training columns the models read as features (besides the two zone ids), and every column ml/ reads
# from the mart; the quality gate (fares.quality.suites) checks exactly these, plus source_month (its batch key).
MART_FEATURES: tuple[str, ...] = (
    "pickup_hour",
    "pickup_dow",
    "is_weekend",
    "is_airport_pickup",
    "is_airport_dropoff",
    "is_same_zone",
    "centroid_distance_miles",
    "is_jfk_manhattan",
    "is_newark_dropoff",
    "is_laguardia_trip",
)
TRAINING_COLUMNS: tuple[str, ...] = (
    "trip_id",
    "service",
    "pickup_at",
    "pickup_zone_id",
    "dropoff_zone_id",
    *MART_FEATURES,
    "rider_fare",
)
# What happened on each trip, read beside TRAINING_COLUMNS for one purpose: a training trip's zone-pair typicals are
# computed without the trip itself (fares.ml.features.leave_one_out). Never model inputs, and not checked by the gate.
OUTCOME_COLUMNS: tuple[str, ...] = ("trip_miles", "duration_minutes")


class TrainingDataError(RuntimeError):
    """The training mart is missing, empty, or lacks a service: there is nothing sound to train on."""


class RegistryError(RuntimeError):
    """A model version is missing, unreadable, or a promote/rollback cannot be done."""
