"""The training sample: a bounded, stratified, deterministic sample of marts.ml_fare_training, read through the engine.

Training never reads the whole mart: it takes the newest `train_months` months with taxi or Uber trips (each service
from its own months among them, aligned or not) and at most `train_rows_per_service` trips of each service in all,
shared evenly among that service's months (a month with fewer trips than its share gives the rest to the others,
`month_quotas`) and chosen in each month by a hash of the trip id (the same trips every run while the data is
unchanged). Each month's strata are read in one statement (one scan of the month) and parsed before the next month,
so memory holds the sample, never the table. The sample's size, and so the fit's time and memory, therefore depend on
the settings, not on how many months are loaded; the reads grow with the months in the window (`train_months`).
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from fares.engines import get_engine
from fares.ml import OUTCOME_COLUMNS, SERVICES, TRAINING_COLUMNS, TrainingDataError

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse
    from fares.engines.base import Engine

log = logging.getLogger(__name__)

TRAINING_VIEW = "marts.ml_fare_training"
COLUMNS = TRAINING_COLUMNS  # what is read of ml_fare_training (fares.ml: ids, pickup_at, features, rider_fare)


@dataclass(frozen=True)
class SamplePart:
    """One stratum of the sample: a month and service, how many trips it has and how many were kept."""

    month: str
    service: str
    available: int
    kept: int


_STRATA_SQL = (
    "with newest as (select distinct source_month from marts.service_month_coverage"
    " where service = any(%s) order by source_month desc limit %s)"
    " select c.source_month, c.service, c.trips from marts.service_month_coverage c"
    " join newest on c.source_month = newest.source_month where c.service = any(%s) order by 1, 2"
)
_DTYPES = {"trip_id": "str", "service": "str", "pickup_zone_id": "int64", "dropoff_zone_id": "int64"}
_MONTH = re.compile(r"^\d{4}-\d{2}$")


def _month_query(engine: Engine, month: str, fractions: dict[str, float]) -> str:
    """One month's strata in one read: each service's trips, below a fraction of 1 that share of them chosen by a hash
    of trip_id. One statement per month, not per (month, service): each scans the month's partition of the stored
    trips once (a real month: about 20M rows), whatever the number of services."""
    if not _MONTH.match(month) or not fractions or not set(fractions) <= set(SERVICES):
        raise TrainingDataError(f"unexpected stratum {month!r} {sorted(fractions)!r} in marts.service_month_coverage")
    strata = []
    for service, fraction in sorted(fractions.items()):
        stratum = f"service = '{service}'"
        if fraction < 1:
            stratum += " and " + engine.hash_below("trip_id", fraction)
        strata.append(f"({stratum})")
    columns = ", ".join((*COLUMNS, *OUTCOME_COLUMNS))
    where = f"source_month = '{month}' and ({' or '.join(strata)})"
    return f"select {columns} from {TRAINING_VIEW} where {where}"  # noqa: S608 - checked month, fixed names


def month_quotas(available: dict[str, int], budget: int) -> dict[str, int]:
    """How many trips each month of one service gives the sample: `budget` shared evenly among the months, a month
    with fewer trips than its share taking all of them and leaving the rest to the larger months (the smallest month
    is served first, so the shares are as even as the months allow; what a share's integer division leaves goes to the
    months served later: the larger ones, the newest among equal sizes)."""
    quotas: dict[str, int] = {}
    left = budget
    # smallest first; among equal sizes the oldest first
    order = sorted(available, key=lambda month: (available[month], month))
    for i, month in enumerate(order):
        quotas[month] = min(available[month], left // (len(order) - i))
        left -= quotas[month]
    return quotas


def load_training_sample(settings: Settings, wh: Warehouse) -> tuple[pd.DataFrame, list[SamplePart]]:
    """The bounded training sample and what was kept of each (month, service) stratum, read through the engine in
    use (each stratum on its own, so memory holds the sample, never the table). Zones come with the lookups
    (`fares.ml.lookups.load_lookups`), read once.

    Raises:
        TrainingDataError: the marts do not exist yet, or hold no month of taxi or Uber trips.
    """
    engine = get_engine(settings)
    budget = settings.train_rows_per_service
    with engine.catalog(wh) as catalog:
        for table in (TRAINING_VIEW, "marts.service_month_coverage"):
            if not catalog.table_exists(table):
                raise TrainingDataError(f"{table} does not exist: run the transform stage (dbt build) first")
        found = catalog.execute(_STRATA_SQL, (list(SERVICES), settings.train_months, list(SERVICES))).fetchall()
    strata = [(str(m), str(s), int(n)) for m, s, n in found]
    if not strata:
        raise TrainingDataError(
            "the training data is empty: no month of taxi or Uber trips (run ingest and transform first)"
        )
    quotas: dict[tuple[str, str], int] = {}
    for service in SERVICES:
        months = {month: n for month, s, n in strata if s == service}
        quotas.update({(month, service): q for month, q in month_quotas(months, budget).items()})
    parts, kept = [], []
    for month in sorted({month for month, _, _ in strata}):
        available = {service: n for m, service, n in strata if m == month}
        # A little over each share, then capped: the hash draw varies by a few hundred rows around its mean.
        fractions = {
            service: 1.0 if n <= quotas[(month, service)] else min(1.0, 1.01 * quotas[(month, service)] / n)
            for service, n in available.items()
        }
        read = engine.read_bulk(wh, _month_query(engine, month, fractions), _DTYPES, ("pickup_at",))
        for service in sorted(available):
            part = read[read["service"] == service]
            quota = quotas[(month, service)]
            if len(part) > quota:
                order = pd.util.hash_pandas_object(part["trip_id"], index=False).to_numpy().argsort(kind="stable")
                part = part.iloc[order[:quota]]
            parts.append(part.reset_index(drop=True))
            kept.append(SamplePart(month, service, available[service], len(part)))
        del read
    training = pd.concat(parts, ignore_index=True)
    log.info(
        "training sample: %d rows from %d month(s) (at most %d per service)",
        len(training),
        len({p.month for p in kept}),
        budget,
    )
    return training, kept


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
