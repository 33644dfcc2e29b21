"""The dbt-built lookups a fare model is fitted with and carries in its bundle.

Zones, zone pairs, pair x hour typicals, Uber price levels, the taxi tariff, the HVFHV charges and the published
HVFHV price moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from fares.engines import get_engine
from fares.ml import SERVICES, TrainingDataError
from fares.ml.drift import PRICE_MOVE_COLUMNS
from fares.ml.features import ZONE_COLUMNS
from fares.ml.holdout import HoldoutPlan
from fares.ml.tariff import HVFHV_CHARGE_COLUMNS, RATE_CARD_COLUMNS, ROUTE_FLAGS, ROUTE_SHARES

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse

TYPICAL_COLUMNS: tuple[str, ...] = (
    "pickup_zone_id",
    "dropoff_zone_id",
    "pickup_hour",
    "trips",
    "typical_trip_miles",
    "typical_duration_minutes",
)
LEVEL_COLUMNS: tuple[str, ...] = ("source_month", "trips", "price_level")
# table -> the columns read from it (all in schema marts, written by dbt)
LOOKUP_TABLES: dict[str, tuple[str, ...]] = {
    "dim_zones": ZONE_COLUMNS,
    "dim_zone_pairs": (
        "pickup_zone_id",
        "dropoff_zone_id",
        "centroid_distance_miles",
        "is_same_zone",
        *ROUTE_FLAGS,
        *ROUTE_SHARES,
    ),
    "zone_pair_hourly_typicals": TYPICAL_COLUMNS,
    "uber_monthly_price_levels": LEVEL_COLUMNS,
    "taxi_rate_card": RATE_CARD_COLUMNS,
    "hvfhv_charges": HVFHV_CHARGE_COLUMNS,
    "hvfhv_price_moves": PRICE_MOVE_COLUMNS,
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
    price_moves: pd.DataFrame | None = None  # published HVFHV price moves (marts.hvfhv_price_moves)


HOLDOUT_COLUMNS: tuple[str, ...] = (
    "holdout_from",
    "shared_hours",
    "holdout_hours",
    *(f"holdout_trips_{s}" for s in SERVICES),
    "holdout_cells",
    "has_minimum",
)


def read_marts(settings: Settings, wh: Warehouse, tables: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """`columns` of each `marts.<table>` (small lookups) through the engine in use, as pandas frames.

    Raises:
        TrainingDataError: a table does not exist yet.
    """
    engine = get_engine(settings)
    with engine.catalog(wh) as catalog:
        for table in tables:
            if not catalog.table_exists(f"marts.{table}"):
                raise TrainingDataError(f"marts.{table} does not exist: run the transform stage (dbt build) first")
    return {
        table: engine.read_frame(wh, f"select {', '.join(columns)} from marts.{table}")  # noqa: S608 - constants
        for table, columns in tables.items()
    }


def load_lookups(settings: Settings, wh: Warehouse) -> Lookups:
    """Read the lookup marts and what the holdout holds through the engine in use; TrainingDataError names a missing
    table."""
    frames = read_marts(settings, wh, {**LOOKUP_TABLES, "ml_holdout_window": HOLDOUT_COLUMNS})
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
        price_moves=frames["hvfhv_price_moves"],
    )
