"""The dbt-built lookups a fare model is fitted with and carries in its bundle.

Zones, zone pairs, pair x hour typicals, Uber price levels, the taxi tariff and the HVFHV charges.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from fares.ml import SERVICES, TrainingDataError
from fares.ml.holdout import HoldoutPlan
from fares.warehouse import scalar

if TYPE_CHECKING:
    from fares.settings import Settings
    from fares.warehouse import Warehouse

# table -> the columns read from it (all in schema marts, written by dbt)
LOOKUP_TABLES: dict[str, tuple[str, ...]] = {
    "dim_zones": (
        "zone_id",
        "borough",
        "zone_name",
        "service_zone",
        "centroid_lat",
        "centroid_lon",
        "geometry_wkt",
        "is_airport",
    ),
    "dim_zone_pairs": (
        "pickup_zone_id",
        "dropoff_zone_id",
        "centroid_distance_miles",
        "is_same_zone",
        "is_jfk_manhattan",
        "is_newark_dropoff",
        "is_laguardia_trip",
        "is_airport_fee_pickup",
        "is_congestion_trip",
        "is_relief_zone_trip",
    ),
    "zone_pair_hourly_typicals": (
        "pickup_zone_id",
        "dropoff_zone_id",
        "pickup_hour",
        "trips",
        "typical_trip_miles",
        "typical_duration_minutes",
    ),
    "uber_monthly_price_levels": ("source_month", "trips", "price_level"),
    "taxi_rate_card": ("charge", "amount_usd", "effective_from", "effective_to"),
    "hvfhv_charges": ("charge", "amount", "unit", "effective_from", "effective_to"),
}


@dataclass
class Lookups:
    """Everything besides the trips that a fit needs, as dbt built it."""

    zones: pd.DataFrame
    zone_pairs: pd.DataFrame
    typicals: pd.DataFrame
    price_levels: pd.DataFrame
    rate_card: pd.DataFrame
    holdout_from: pd.Timestamp | None
    holdout: HoldoutPlan | None = None  # what marts.ml_holdout_window says the holdout holds
    hvfhv_charges: pd.DataFrame | None = None  # the dated HVFHV charges (marts.hvfhv_charges)


HOLDOUT_COLUMNS: tuple[str, ...] = (
    "holdout_from",
    "shared_hours",
    "holdout_hours",
    *(f"holdout_trips_{s}" for s in SERVICES),
    "holdout_cells",
    "has_minimum",
)


def _read_postgres(wh: Warehouse, tables: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    frames: dict[str, pd.DataFrame] = {}
    with wh.connect() as conn:
        for table, columns in tables.items():
            if scalar(conn, "select to_regclass(%s)", (f"marts.{table}",)) is None:
                raise TrainingDataError(f"marts.{table} does not exist: run the transform stage (dbt build) first")
            cur = conn.execute(f"select {', '.join(columns)} from marts.{table}")  # noqa: S608 - names are constants
            frames[table] = pd.DataFrame(cur.fetchall(), columns=list(columns))
    return frames


def load_lookups(settings: Settings, wh: Warehouse) -> Lookups:
    """Read the lookup marts and the holdout start (through Spark with the Spark engine); TrainingDataError names a
    missing table."""
    tables = {**LOOKUP_TABLES, "ml_holdout_window": HOLDOUT_COLUMNS}
    if settings.engine == "spark":
        from fares.ml.spark_reader import read_marts_spark

        frames = read_marts_spark(settings, tables)
    else:
        frames = _read_postgres(wh, tables)
    zones = frames["dim_zones"].sort_values("zone_id", ignore_index=True)
    zones["zone_id"] = zones["zone_id"].astype("int64")
    zones["is_airport"] = zones["is_airport"].fillna(False).astype(bool)
    window = frames["ml_holdout_window"]
    if window.empty:
        raise TrainingDataError(
            "no clock hour holds trips of both taxi and Uber (marts.ml_holdout_window is empty): nothing to judge on"
        )
    levels = frames["uber_monthly_price_levels"]
    levels["price_level"] = levels["price_level"].astype(float)
    row = window.iloc[0]
    holdout = HoldoutPlan(
        start=pd.Timestamp(row["holdout_from"]),
        shared_hours=int(row["shared_hours"]),
        holdout_hours=int(row["holdout_hours"]),
        trips={s: int(row[f"holdout_trips_{s}"]) for s in SERVICES},
        cells=int(row["holdout_cells"]),
        has_minimum=bool(row["has_minimum"]),
    )
    return Lookups(
        zones=zones,
        zone_pairs=frames["dim_zone_pairs"],
        typicals=frames["zone_pair_hourly_typicals"],
        price_levels=levels,
        rate_card=frames["taxi_rate_card"],
        holdout_from=holdout.start,
        holdout=holdout,
        hvfhv_charges=frames["hvfhv_charges"],
    )
