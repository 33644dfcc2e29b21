"""The training sample: a bounded, stratified, deterministic sample of marts.ml_fare_training, streamed from PostgreSQL.

Training never reads the whole mart: it takes the newest `train_months` months with taxi or Uber trips (each service
from its own months among them, aligned or not) and at most `train_rows_per_month` trips per service and month,
chosen by a hash of the trip id (the same trips every run while the data is unchanged). Each (month, service) part
is copied out on its own and parsed before the next one, so memory holds the sample, never the table. Peak memory
therefore depends on the two settings, not on the history loaded.
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from fares.ml import SERVICES, TrainingDataError
from fares.ml.features import MART_FEATURES

if TYPE_CHECKING:
    import psycopg

    from fares.settings import Settings
    from fares.warehouse import Warehouse

log = logging.getLogger(__name__)

TRAINING_VIEW = "marts.ml_fare_training"
# The columns of ml_fare_training the models read: ids, time, MART_FEATURES and the target (quality/suites.py checks
# exactly these, plus source_month).
COLUMNS: tuple[str, ...] = (
    "trip_id",
    "service",
    "pickup_at",
    "pickup_zone_id",
    "dropoff_zone_id",
    *MART_FEATURES,
    "rider_fare",
)
# What happened on each trip, read beside COLUMNS for one purpose: a training trip's zone-pair typicals are computed
# without the trip itself (ml.features.leave_one_out). Never model inputs.
OUTCOME_COLUMNS: tuple[str, ...] = ("trip_miles", "duration_minutes")
_ZONES_SQL = (
    "select zone_id, borough, zone_name, service_zone, centroid_lat, centroid_lon, geometry_wkt, is_airport"
    " from marts.dim_zones order by zone_id"
)
_HASH_RANGE = 2**31  # hashtext() & 0x7fffffff is uniform on [0, 2^31)


@dataclass(frozen=True)
class SamplePart:
    """One stratum of the sample: a month and service, how many trips it has and how many were kept."""

    month: str
    service: str
    available: int
    kept: int


def _exists(conn: psycopg.Connection, table: str) -> bool:
    row = conn.execute("select to_regclass(%s)", (table,)).fetchone()
    return row is not None and row[0] is not None


def _strata(conn: psycopg.Connection, months: int) -> list[tuple[str, str, int]]:
    """(month, service, cleaned trips) of the newest `months` months with taxi or Uber trips (month coverage mart)."""
    rows = conn.execute(
        "with newest as (select distinct source_month from marts.service_month_coverage"
        " where service = any(%s) order by source_month desc limit %s)"
        " select c.source_month, c.service, c.trips from marts.service_month_coverage c"
        " join newest using (source_month) where c.service = any(%s) order by 1, 2",
        (list(SERVICES), months, list(SERVICES)),
    ).fetchall()
    return [(m, s, int(n)) for m, s, n in rows]


def _copy_part(conn: psycopg.Connection, month: str, service: str, fraction: float) -> pd.DataFrame:
    where = "source_month = %s and service = %s"
    params: tuple[object, ...] = (month, service)
    if fraction < 1:
        where += " and (hashtext(trip_id) & 2147483647) < %s"
        params = (*params, int(fraction * _HASH_RANGE))
    query = f"select {', '.join((*COLUMNS, *OUTCOME_COLUMNS))} from {TRAINING_VIEW} where {where}"  # noqa: S608 - fixed names
    buf = io.BytesIO()
    with conn.cursor().copy(f"copy ({query}) to stdout with (format csv, header)", params) as copy:
        for chunk in copy:
            buf.write(chunk)
    buf.seek(0)
    part = pd.read_csv(
        buf, dtype={"trip_id": str, "service": str, "pickup_zone_id": "int64", "dropoff_zone_id": "int64"}
    )
    part["pickup_at"] = pd.to_datetime(part["pickup_at"], format="ISO8601")
    return part


def load_training_sample(settings: Settings, wh: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame, list[SamplePart]]:
    """The bounded training sample, marts.dim_zones, and what was kept of each (month, service) stratum.

    Raises:
        TrainingDataError: the marts do not exist yet, or hold no month of taxi or Uber trips.
    """
    per_stratum = settings.train_rows_per_month
    with wh.connect() as conn:
        for table in (TRAINING_VIEW, "marts.dim_zones", "marts.service_month_coverage"):
            if not _exists(conn, table):
                raise TrainingDataError(f"{table} does not exist: run the transform stage (dbt build) first")
        strata = _strata(conn, settings.train_months)
        if not strata:
            raise TrainingDataError(
                "the training data is empty: no month of taxi or Uber trips (run ingest and transform first)"
            )
        parts, kept = [], []
        for month, service, available in strata:
            # A little over the share, then capped: the hash draw varies by a few hundred rows around its mean.
            fraction = 1.0 if available <= per_stratum else min(1.0, 1.01 * per_stratum / available)
            part = _copy_part(conn, month, service, fraction)
            if len(part) > per_stratum:
                order = pd.util.hash_pandas_object(part["trip_id"], index=False).to_numpy().argsort(kind="stable")
                part = part.iloc[order[:per_stratum]].reset_index(drop=True)
            parts.append(part)
            kept.append(SamplePart(month, service, available, len(part)))
        cur = conn.execute(_ZONES_SQL)
        zones = pd.DataFrame(cur.fetchall(), columns=[d.name for d in cur.description or ()])
    training = pd.concat(parts, ignore_index=True)
    zones["zone_id"] = zones["zone_id"].astype("int64")
    zones["is_airport"] = zones["is_airport"].fillna(False).astype(bool)
    log.info(
        "training sample: %d rows from %d month(s) (at most %d per service and month)",
        len(training),
        len({p.month for p in kept}),
        per_stratum,
    )
    return training, zones, kept


def fit_threads(settings: Settings) -> int:
    """OpenMP threads for the fit: `train_threads` when set, else the cores the machine's load leaves free (>= 1).

    Boosting threads spin on busy cores (366 s instead of 30 s measured for 1M rows with both cores taken), so the
    fit uses both cores only when they are free.
    """
    if settings.train_threads:
        return settings.train_threads
    cores = os.cpu_count() or 1
    try:
        busy = os.getloadavg()[0]
    except OSError:
        return 1
    return max(1, min(cores, int(cores - busy + 0.5)))
