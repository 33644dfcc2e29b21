"""The time-based holdout: where it starts, what it holds, and whether that is enough to mean anything.

marts.ml_holdout_window decides it for a trained model; `plan_holdout` is the same rule for frames without a
database (tests, benchmarks) and for the calibration slice of the training window: starting from the newest clock
hour in which every service has trips, the holdout grows backwards until it holds at least `fraction` of those hours,
`min_trips` trips of each service and `min_cells` route x hour-of-day cells with both services, never taking more
than `max_share` of a service's trips.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from fares.config.settings import Settings
from fares.engines.transform import project_var
from fares.ml import SERVICES, TrainingDataError

# dbt's ml_holdout_window applies the same vars: dbt_project.yml is their one definition
HOLDOUT_FRACTION: float = project_var("holdout_fraction")
HOLDOUT_MAX_SHARE: float = project_var("holdout_max_share")
MIN_TRIPS = int(Settings.model_fields["holdout_min_trips"].default)
MIN_CELLS = int(Settings.model_fields["holdout_min_cells"].default)


@dataclass(frozen=True)
class HoldoutPlan:
    """Where a holdout starts and what it holds."""

    start: pd.Timestamp
    shared_hours: int
    holdout_hours: int
    trips: dict[str, int] = field(default_factory=dict)
    cells: int = 0
    has_minimum: bool = False

    def describe(self, min_trips: int, min_cells: int) -> str:
        """One sentence for the report: what the holdout holds, and plainly whether it is enough."""
        held = ", ".join(f"{n:,} {s}" for s, n in self.trips.items())
        text = (
            f"The holdout starts {self.start} ({self.holdout_hours} of {self.shared_hours} shared clock hours) and "
            f"holds {held} trips in {self.cells:,} route x hour cells with both services"
        )
        if self.has_minimum:
            return f"{text}: at least the {min_trips:,} trips per service and {min_cells:,} cells asked."
        return (
            f"{text}: FEWER than the {min_trips:,} trips per service and {min_cells:,} cells asked (the data has no "
            "more hours where both services run without taking most of a service's trips), so figures judged on it "
            "rest on too few trips to mean much."
        )


def plan_holdout(
    trips: pd.DataFrame,
    fraction: float = HOLDOUT_FRACTION,
    min_trips: int = MIN_TRIPS,
    min_cells: int = MIN_CELLS,
    max_share: float = HOLDOUT_MAX_SHARE,
) -> HoldoutPlan:
    """The holdout of `trips` (service, pickup_at, pickup_zone_id, dropoff_zone_id) by ml_holdout_window's rule.

    Raises:
        TrainingDataError: no clock hour holds trips of every service.
    """
    at = pd.to_datetime(trips["pickup_at"])
    hour_start = at.dt.floor("h")
    counts = (
        pd.crosstab(hour_start.to_numpy(), trips["service"].to_numpy())
        .reindex(columns=list(SERVICES), fill_value=0)
        .sort_index(ascending=False)
    )
    shared = (counts > 0).all(axis=1).to_numpy()
    if not shared.any():
        raise TrainingDataError("no clock hour holds trips of both taxi and Uber: nothing to judge on")
    cumulative = counts.cumsum()
    cells = (
        pd.DataFrame(
            {
                "pu": trips["pickup_zone_id"].to_numpy(),
                "do": trips["dropoff_zone_id"].to_numpy(),
                "hour": at.dt.hour.to_numpy(),
                "service": trips["service"].to_numpy(),
                "at": hour_start.to_numpy(),
            }
        )
        .groupby(["pu", "do", "hour", "service"])["at"]
        .max()
        .unstack("service")
        .reindex(columns=list(SERVICES))
        .dropna()
        .min(axis=1)
    )
    cells_cumulative = cells.value_counts().reindex(counts.index, fill_value=0).cumsum().to_numpy()
    starts = counts.index[shared]
    held = cumulative.to_numpy()[shared]
    held_cells = cells_cumulative[shared]
    n_shared = len(starts)
    hours = np.arange(1, n_shared + 1)
    floor = max(1, int(np.ceil(n_shared * fraction)))
    has_minimum = (hours >= floor) & (held >= min_trips).all(axis=1) & (held_cells >= min_cells)
    allowed = (hours == 1) | (held <= max_share * counts.sum().to_numpy()).all(axis=1)
    enough = np.flatnonzero(allowed & has_minimum)
    i = int(enough[0]) if len(enough) else int(np.flatnonzero(allowed)[-1])
    return HoldoutPlan(
        start=pd.Timestamp(starts[i]),
        shared_hours=n_shared,
        holdout_hours=int(hours[i]),
        trips={s: int(n) for s, n in zip(SERVICES, held[i], strict=True)},
        cells=int(held_cells[i]),
        has_minimum=bool(has_minimum[i]),
    )


def holdout_start(trips: pd.DataFrame, fraction: float = HOLDOUT_FRACTION) -> pd.Timestamp:
    """Where plan_holdout's holdout starts."""
    return plan_holdout(trips, fraction).start


def split_holdout(
    training: pd.DataFrame, holdout_from: pd.Timestamp | None = None, fraction: float = HOLDOUT_FRACTION
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One time for every service: trips at or after `holdout_from` (marts.ml_holdout_window) are the holdout.

    Without it (DB-free fits) the same rule as the mart (plan_holdout).
    """
    if holdout_from is None:
        holdout_from = holdout_start(training, fraction)
    ordered = training.sort_values(["pickup_at", "service"], kind="stable")
    is_holdout = (ordered["pickup_at"] >= holdout_from).to_numpy()
    return ordered[~is_holdout], ordered[is_holdout]
