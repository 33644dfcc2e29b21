"""The training sample and the lookup marts through Spark (FARES_ENGINE=spark): ml/sample.py's rules, Spark's marts."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import pandas as pd

from fares.ml import SERVICES, TrainingDataError
from fares.ml.lookups import LOOKUP_TABLES
from fares.ml.sample import COLUMNS, OUTCOME_COLUMNS, TRAINING_VIEW, SamplePart

if TYPE_CHECKING:
    from fares.settings import Settings

log = logging.getLogger(__name__)

_HASH_BUCKETS = 1_000_000


def stratum_filter(month: str, service: str, fraction: float) -> str:
    """One (month, service) stratum; below a fraction of 1, that share of it chosen by a hash of trip_id."""
    where = f"(source_month = '{month}' and service = '{service}'"
    if fraction < 1:
        where += f" and pmod(xxhash64(trip_id), {_HASH_BUCKETS}) < {int(fraction * _HASH_BUCKETS)}"
    return where + ")"


def load_training_sample_spark(settings: Settings) -> tuple[pd.DataFrame, pd.DataFrame, list[SamplePart]]:
    """The bounded training sample, marts.dim_zones, and what was kept of each (month, service), through Spark.

    The PostgreSQL sampler's rules: the newest `train_months` months with taxi or Uber trips, at most
    `train_rows_per_month` trips per service and month chosen by a hash of trip_id (Spark's xxhash64, so a sampled
    stratum keeps other trips than on PostgreSQL; an unsampled one the same), rows ordered by trip_id. Spark reads the
    strata in one pass.

    Raises:
        TrainingDataError: the marts do not exist yet, or hold no month of taxi or Uber trips.
    """
    from fares.lakehouse import get_spark

    spark = get_spark(settings)
    for table in (TRAINING_VIEW, "marts.dim_zones", "marts.service_month_coverage"):
        if not spark.catalog.tableExists(table):
            raise TrainingDataError(f"{table} does not exist: run the transform stage (dbt build) first")
    services = ", ".join(f"'{s}'" for s in SERVICES)
    query = (
        "with newest as (select distinct source_month from marts.service_month_coverage"  # noqa: S608 - constants, an int
        f" where service in ({services})"
        f" order by source_month desc limit {int(settings.train_months)})"
        " select c.source_month, c.service, c.trips from marts.service_month_coverage c"
        f" join newest on c.source_month = newest.source_month where c.service in ({services}) order by 1, 2"
    )
    strata = spark.sql(query).collect()
    if not strata:
        raise TrainingDataError(
            "the training data is empty: no month of taxi or Uber trips (run ingest and transform first)"
        )
    cap = settings.train_rows_per_month
    where = " or ".join(stratum_filter(m, s, 1.0 if n <= cap else min(1.0, 1.01 * cap / n)) for m, s, n in strata)
    sample = (
        spark.table(TRAINING_VIEW).where(where).select("source_month", *COLUMNS, *OUTCOME_COLUMNS).orderBy("trip_id")
    )
    rows: pd.DataFrame = sample.toPandas()
    parts, kept = [], []
    for month, service, available in strata:
        part = rows[(rows["source_month"] == month) & (rows["service"] == service)]
        if len(part) > cap:  # the hash draw varies a little around its mean: cap as the PostgreSQL sampler does
            order = pd.util.hash_pandas_object(part["trip_id"], index=False).to_numpy().argsort(kind="stable")
            part = part.iloc[order[:cap]]
        parts.append(part.drop(columns="source_month"))
        kept.append(SamplePart(month, service, int(available), len(part)))
    training = pd.concat(parts, ignore_index=True)
    training = training.astype({"trip_id": str, "service": str, "pickup_zone_id": "int64", "dropoff_zone_id": "int64"})
    training["pickup_at"] = pd.to_datetime(training["pickup_at"])
    zones: pd.DataFrame = (
        spark.table("marts.dim_zones").select(*LOOKUP_TABLES["dim_zones"]).orderBy("zone_id").toPandas()
    )
    zones["zone_id"] = zones["zone_id"].astype("int64")
    zones["is_airport"] = zones["is_airport"].fillna(False).astype(bool)
    log.info("training sample (Spark): %d rows from %d month(s)", len(training), len({p.month for p in kept}))
    return training, zones, kept


def read_marts_spark(settings: Settings, tables: dict[str, tuple[str, ...]]) -> dict[str, pd.DataFrame]:
    """`columns` of each `marts.<table>` (small lookups) through Spark, as pandas frames.

    Raises:
        TrainingDataError: a table does not exist yet.
    """
    from fares.lakehouse import get_spark

    spark = get_spark(settings)
    frames: dict[str, pd.DataFrame] = {}
    for table, columns in tables.items():
        if not spark.catalog.tableExists(f"marts.{table}"):
            raise TrainingDataError(f"marts.{table} does not exist: run the transform stage (dbt build) first")
        frames[table] = spark.table(f"marts.{table}").select(*columns).toPandas()
    return frames
