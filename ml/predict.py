"""The fare model bundle the API serves: `FareModel.predict_frame`, and loading the current or a named version."""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fares.ml import SERVICES, RegistryError
from fares.ml.drift import LevelDrift, measure_level_drift
from fares.ml.features import PairStats, RouteTable, ZoneTable, build_matrix, check_zone_ids, request_columns
from fares.ml.tariff import Tariff, UberCharges, meter_fare

log = logging.getLogger(__name__)

MODEL_FILE = "model.pkl"
CURRENT_FILE = "CURRENT"
# The prices a quote is made of, in the model's output order (the API's fast path reads them as one block).
PRICE_COLUMNS: tuple[str, ...] = (
    "taxi_fare",
    "taxi_low",
    "taxi_high",
    "uber_fare",
    "uber_low",
    "uber_high",
    "p_uber_cheaper",
    "uber_stale_months",
    "uber_level_spread",  # sd of the log Uber level's move over the stale months (0 when the level is current)
)
OUTPUT_COLUMNS: tuple[str, ...] = (*PRICE_COLUMNS, "route_log_trips")
SMALL_BATCH = 32  # up to this many rows the numpy forest beats scikit-learn's per-tree Python loop
NEW_YORK = "America/New_York"
Z_80 = 1.2815515655446004  # the 0.9 quantile of the standard normal: low/high are the 0.1/0.9 quantiles


def _naive_new_york(pickup_at: pd.Series) -> np.ndarray:
    """Naive New York wall-clock datetime64 values (tz-aware input is converted, strings parsed)."""
    values = pickup_at.to_numpy()
    if np.issubdtype(values.dtype, np.datetime64):
        return values
    parsed = pd.to_datetime(pickup_at)
    if parsed.dt.tz is not None:
        parsed = parsed.dt.tz_convert(NEW_YORK).dt.tz_localize(None)
    return parsed.to_numpy()


@dataclass
class CompiledForest:
    """All trees of several boosted models in flat arrays, walked in numpy: fast for one or a few rows."""

    feature: np.ndarray
    threshold: np.ndarray
    child: np.ndarray
    value: np.ndarray
    roots: np.ndarray
    starts: np.ndarray
    baselines: np.ndarray
    depth: int

    @classmethod
    def from_models(cls, models: list[Any]) -> CompiledForest:
        """Flatten fitted HistGradientBoostingRegressors (numeric features only, identity link)."""
        feats: list[np.ndarray] = []
        thrs: list[np.ndarray] = []
        childs: list[np.ndarray] = []
        values: list[np.ndarray] = []
        roots: list[int] = []
        starts: list[int] = []
        offset = 0
        depth = 0
        for model in models:
            starts.append(len(roots))
            for (predictor,) in model._predictors:  # noqa: SLF001 - the fitted trees have no public accessor
                nodes = predictor.nodes
                idx = np.arange(len(nodes)) + offset
                leaf = nodes["is_leaf"].astype(bool)
                feats.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.int64))
                thrs.append(np.where(leaf, np.inf, nodes["num_threshold"]))
                left = np.where(leaf, idx, nodes["left"].astype(np.int64) + offset)
                right = np.where(leaf, idx, nodes["right"].astype(np.int64) + offset)
                childs.append(np.column_stack([left, right]).ravel())
                values.append(np.where(leaf, nodes["value"], 0.0))
                roots.append(offset)
                depth = max(depth, int(nodes["depth"].max()))
                offset += len(nodes)
        baselines = np.array([float(np.ravel(m._baseline_prediction)[0]) for m in models])  # noqa: SLF001 - no public accessor
        return cls(
            np.concatenate(feats),
            np.concatenate(thrs),
            np.concatenate(childs),
            np.concatenate(values),
            np.array(roots, dtype=np.int64),
            np.array(starts, dtype=np.int64),
            baselines,
            depth,
        )

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Raw predictions, shape (n_rows, n_models); NaN-free input assumed (features guarantee it)."""
        n, k = x.shape
        flat = np.ascontiguousarray(x, dtype=np.float64).ravel()
        base = (np.arange(n, dtype=np.int64) * k)[:, None]
        node = np.broadcast_to(self.roots, (n, len(self.roots)))
        for _ in range(self.depth):
            node = self.child[2 * node + (flat[base + self.feature[node]] > self.threshold[node])]
        return np.add.reduceat(self.value[node], self.starts, axis=1) + self.baselines


SUPPORT_EDGES = np.log1p(np.array([1.0, 5.0, 20.0]))  # pair x hour trips: unseen | 1-4 | 5-19 | 20+
SUPPORT_LABELS: tuple[str, ...] = ("unseen", "1-4 trips", "5-19 trips", "20+ trips")
SAME_MARGIN = 0.15  # |p_uber_cheaper - 0.5| below this: the bands cannot separate the fares, "about the same"


def support_bucket(log_count: np.ndarray) -> np.ndarray:
    """Index into SUPPORT_LABELS of each pair x hour's log1p(trip count)."""
    return np.searchsorted(SUPPORT_EDGES, log_count, side="right")


@dataclass
class ServiceModel:
    """One service's log-ratio regressor (log fare minus log base) and its residual quantiles by route support."""

    regressor: Any
    q_low: np.ndarray
    q_high: np.ndarray

    def spread(self, log_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low/high log offsets: wider where the zone pair x hour has fewer training trips."""
        b = support_bucket(log_count)
        return self.q_low[b], self.q_high[b]


@dataclass
class PriceLevels:
    """uber_monthly_price_levels: the Uber price per meter unit of each month, and how far it drifts past them."""

    months: np.ndarray
    levels: np.ndarray
    monthly_drift: float
    # how far the level moves over k months (the data's levels and the published moves); None in bundles from before
    # it, which widen by monthly_drift * sqrt(k)
    drift: LevelDrift | None = None

    @classmethod
    def from_frame(cls, frame: pd.DataFrame, published: pd.DataFrame | None = None) -> PriceLevels:
        """From the mart's rows (source_month 'YYYY-MM', price_level) and the published moves (hvfhv_price_moves)."""
        frame = frame.dropna(subset=["price_level"]).sort_values("source_month")
        months = pd.to_datetime(frame["source_month"], format="%Y-%m").to_numpy().astype("datetime64[M]")
        levels = frame["price_level"].to_numpy(dtype=float)
        drift = measure_level_drift(months, levels, published)
        return cls(months, levels, drift.noise, drift)

    def at(self, pickup_at: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The level for each pickup's month (the nearest earlier known month, else the oldest) and how many months
        away from a known month that is (0 = the month's own level)."""
        month = pickup_at.astype("datetime64[M]")
        if not len(self.months):
            return np.ones(len(month)), np.zeros(len(month), dtype=np.int64)
        idx = np.maximum(np.searchsorted(self.months, month, side="right") - 1, 0)
        away = np.abs((month - self.months[idx]).astype(np.int64))
        return self.levels[idx], away

    def spread(self, stale_months: np.ndarray) -> np.ndarray:
        """The standard deviation of the log level `stale_months` months away from the level a quote uses."""
        drift = getattr(self, "drift", None)  # bundles from before LevelDrift
        if drift is None:
            return self.monthly_drift * np.sqrt(stale_months)
        return drift.spread(stale_months)


def typical_units(miles: np.ndarray, minutes: np.ndarray) -> np.ndarray:
    """Taxi-meter units (1/5 mile, or a minute slower than 12 mph) of a typical trip: Uber's yardstick."""
    return np.maximum(5 * miles + np.maximum(minutes - 5 * miles, 0), 1.0)


@dataclass
class FareModel:
    """Taxi and Uber fares from the tariff and the price level, times what the models learned; bands; the decision."""

    services: dict[str, ServiceModel]
    zone_table: ZoneTable
    routes: RouteTable
    pairs: PairStats
    tariff: Tariff
    levels: PriceLevels
    zones: pd.DataFrame
    trained_from: str
    trained_to: str
    version: str = ""
    metrics: dict = field(default_factory=dict)
    data_source: dict = field(default_factory=dict)  # what it learned from: see fares.ingestion.provenance
    # p_uber_cheaper = Phi(p_scale * z), z the fare difference over its band-implied spread; fitted on the training
    # window's latest slice (ml.evaluate.fit_decision_scale) so the probability matches how often Uber was cheaper.
    p_scale: float = 1.0
    # the dated HVFHV charges (dbt seed hvfhv_charges): an Uber quote for another date than the training window's
    # newest day moves by their difference; None in bundles from before them
    uber_charges: UberCharges | None = None
    # how far the taxi's fare-to-meter ratio moved per month in the training window (ml.train.measure_monthly_drift):
    # the taxi band widens by it outside the window; 0 in bundles from before it
    taxi_monthly_drift: float = 0.0
    _forest: CompiledForest | None = field(default=None, repr=False)

    def _raw(self, x: np.ndarray) -> np.ndarray:
        if len(x) <= SMALL_BATCH:
            if self._forest is None:
                self._forest = CompiledForest.from_models([self.services[s].regressor for s in SERVICES])
            return self._forest.predict(x)
        # one OpenMP thread: as fast on a quiet machine for API-sized batches, far faster on a busy one
        return np.column_stack(
            [
                self.services[s].regressor._raw_predict(x, n_threads=1)[:, 0]  # noqa: SLF001 - predict() has no n_threads knob
                for s in SERVICES
            ]
        )

    def bases(
        self,
        at: np.ndarray,
        pickup: np.ndarray,
        dropoff: np.ndarray,
        hour: np.ndarray,
        typical: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, np.ndarray]:
        """What each model multiplies: the taxi meter under the tariff in force at `at` and the Uber level of its
        month, both applied to the zone pair's typical trip at that hour (or `typical` (miles, minutes): a training
        trip's, with itself left out); plus how stale the Uber level is."""
        if typical is None:
            miles = self.pairs.miles[pickup, dropoff, hour].astype(float)
            minutes = self.pairs.minutes[pickup, dropoff, hour].astype(float)
        else:
            miles, minutes = (np.asarray(a, dtype=float) for a in typical)
        flags = {name: flag[pickup, dropoff] for name, flag in self.routes.flags.items()}
        level, away = self.levels.at(at)
        return {
            "taxi": meter_fare(self.tariff, at, miles, minutes, flags),
            "taxi_ref": meter_fare(
                self.tariff, at, miles, minutes, flags, charges_on=np.datetime64(self.trained_to, "D")
            ),
            "uber": level * typical_units(miles, minutes),
            "stale_months": away,
        }

    def matrix(self, trips: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Features of live trips (pickup_at, pickup_zone_id, dropoff_zone_id) from the bundle's lookups."""
        pickup = trips["pickup_zone_id"].to_numpy(dtype=np.int64)
        dropoff = trips["dropoff_zone_id"].to_numpy(dtype=np.int64)
        return self._matrix(_naive_new_york(trips["pickup_at"]), pickup, dropoff)

    def _matrix(
        self, at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        check_zone_ids(self.zone_table, pickup, dropoff)
        cols = request_columns(at, pickup, dropoff, self.zone_table, self.routes)
        return (
            build_matrix(cols, pickup, dropoff, self.zone_table, self.pairs),
            at,
            pickup,
            dropoff,
            cols["pickup_hour"],
        )

    def predict_frame(self, trips: pd.DataFrame) -> pd.DataFrame:
        """Fares for `trips` (pickup_at, pickup_zone_id, dropoff_zone_id); the result has the input's index."""
        out = self._predict(*self.matrix(trips))
        return pd.DataFrame(out, index=trips.index, columns=list(OUTPUT_COLUMNS))

    def predict_arrays(self, pickup_at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray) -> np.ndarray:
        """predict_frame's values as one (n, len(OUTPUT_COLUMNS)) array, for naive New York datetime64 pickup times
        and int64 zone ids: the API's path, which spares a single quote pandas' per-call cost."""
        at = np.asarray(pickup_at)
        if not np.issubdtype(at.dtype, np.datetime64):
            at = at.astype("datetime64[us]")
        return self._predict(*self._matrix(at, np.asarray(pickup, dtype=np.int64), np.asarray(dropoff, dtype=np.int64)))

    def _predict(
        self, x: np.ndarray, at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray, hour: np.ndarray
    ) -> np.ndarray:
        raw = self._raw(x)
        base = self.bases(at, pickup, dropoff, hour)
        log_count = self.pairs.log_count[pickup, dropoff, hour]
        stale = base["stale_months"]
        # Outside what the models saw, a quote's log error gains an independent part: the taxi's fare-to-meter ratio
        # drifting by the months outside the window, the Uber level by the months since its newest known month. The
        # two add in variance (in quadrature) to the band measured on the training window's latest slice.
        away = {
            "taxi": getattr(self, "taxi_monthly_drift", 0.0) * np.sqrt(self.months_outside(at)),
            "uber": self.levels.spread(stale),
        }
        out = np.empty((len(at), len(OUTPUT_COLUMNS)))
        sd, drift_var = [], []
        # Taxi: the learned ratio applies to the meter under the newest tariff of the training window, and a tariff
        # change since (or before) moves the fare by the rate card's difference in dollars: tolls and what the meter
        # misses do not scale with the unit charge. The band is relative to the fare under the pickup's card, so it
        # grows and shrinks with the card.
        shift = {"taxi": base["taxi"] - base["taxi_ref"], "uber": np.zeros(len(at))}
        scale = {"taxi": base["taxi_ref"], "uber": base["uber"]}
        for i, service in enumerate(SERVICES):
            lo0, hi0 = self.services[service].spread(log_count)
            widen = Z_80 * away[service]
            lo, hi = -np.hypot(lo0, widen), np.hypot(hi0, widen)
            centre = raw[:, i] + np.log(np.maximum(scale[service], 0.5))
            fare = np.maximum(np.exp(centre) + shift[service], 1.0)
            out[:, 3 * i] = fare
            out[:, 3 * i + 1] = np.maximum(fare * np.exp(lo), 1.0)
            out[:, 3 * i + 2] = np.maximum(fare * np.exp(hi), fare)
            # the window's spread, which p_scale was calibrated on, and apart from it the variance in dollars of a
            # log-normal move of the fare by the drift outside the window (a level nobody observed)
            sd.append((np.maximum(fare * np.exp(hi0), fare) - np.maximum(fare * np.exp(lo0), 1.0)) / (2 * Z_80))
            drift_var.append(fare**2 * np.expm1(away[service] ** 2) * np.exp(away[service] ** 2))
        self._move_uber_charges(out, at, pickup, dropoff)
        from scipy.special import ndtr

        # p_uber_cheaper = Phi(s z) in the window; outside it, averaged over the drift (a normal term added to the fare
        # difference): Phi(s d / sqrt(S0^2 + s^2 V)), which tends to a coin flip as the drift grows
        s = getattr(self, "p_scale", 1.0)  # bundles from before the calibration: 1.0
        spread = np.sqrt(sd[0] ** 2 + sd[1] ** 2 + s**2 * (drift_var[0] + drift_var[1]) + 1e-6)
        out[:, 6] = ndtr(s * (out[:, 0] - out[:, 3]) / spread)
        out[:, 7] = stale
        out[:, 8] = away["uber"]
        out[:, 9] = log_count
        return out

    def _move_uber_charges(self, out: np.ndarray, at: np.ndarray, pickup: np.ndarray, dropoff: np.ndarray) -> None:
        """Uber fare, low and high (columns 3-5 of `out`, learned with the charges of the training window's newest
        day) under the charges of each pickup's day: the shares scale what is not a per-trip dollar charge, and the
        per-trip charges of the day replace those of the reference day."""
        charges = getattr(self, "uber_charges", None)
        if charges is None:
            return
        flags = {name: flag[pickup, dropoff] for name, flag in self.routes.flags.items()}
        airport = self.zone_table.is_airport[pickup] | self.zone_table.is_airport[dropoff]
        fixed, share = charges.fees(at, airport, flags)
        reference = np.full(len(at), np.datetime64(self.trained_to, "D"))
        fixed_ref, share_ref = charges.fees(reference, airport, flags)
        scale = (1 + share) / (1 + share_ref)
        for col in (3, 4, 5):
            out[:, col] = np.maximum((out[:, col] - fixed_ref) * scale + fixed, 1.0)

    def months_outside(self, pickup_at: np.ndarray) -> np.ndarray:
        """Whole months between each pickup's month and the training window's months (0 inside it)."""
        month = pickup_at.astype("datetime64[M]").astype(np.int64)
        first = np.datetime64(self.trained_from, "M").astype(np.int64)
        last = np.datetime64(self.trained_to, "M").astype(np.int64)
        return np.maximum(first - month, 0) + np.maximum(month - last, 0)

    def tariff_in_force(self, pickup_at: np.ndarray) -> np.ndarray:
        """The first day of the taxi tariff period each pickup falls in (the rate card row the quote used)."""
        return self.tariff.period_start(pickup_at.astype("datetime64[D]"))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_forest"] = None  # rebuilt lazily; keeps the file small
        return state


def answer(p_uber_cheaper: np.ndarray) -> np.ndarray:
    """'uber', 'taxi' or 'about the same' (the bands cannot separate them: p within SAME_MARGIN of a coin flip)."""
    return np.where(
        np.abs(p_uber_cheaper - 0.5) < SAME_MARGIN, "about the same", np.where(p_uber_cheaper > 0.5, "uber", "taxi")
    )


# "About the same" also when the expected fares are this close: a dollar, or this share of the cheaper fare.
SAME_PRICE_DOLLARS = 1.0
SAME_PRICE_SHARE = 0.05
# Why the answer is "about the same" (answer_reasons' codes; 0 = a service is named)
SAME_REASONS: tuple[str | None, ...] = (
    None,
    f"the expected fares differ by less than ${SAME_PRICE_DOLLARS:.0f} or {SAME_PRICE_SHARE:.0%}",
    (
        "the data cannot tell which is cheaper: the two bands overlap too much (p_uber_cheaper within "
        f"{SAME_MARGIN} of a coin flip)"
    ),
    (
        "the data cannot tell which is cheaper: the newest Uber price level is older than the pickup (see "
        "uber_stale_months), and over that long Uber's prices move by more than the two fares differ (the Uber "
        "band covers that move and holds the taxi's fare)"
    ),
)


def answer_reasons(
    taxi_fare: np.ndarray,
    uber_fare: np.ndarray,
    p_uber_cheaper: np.ndarray,
    stale_months: np.ndarray | None = None,
    level_spread: np.ndarray | None = None,
) -> np.ndarray:
    """Index into SAME_REASONS for each trip: 1 when the fares are within SAME_PRICE_DOLLARS or SAME_PRICE_SHARE of
    each other (they cost nearly the same); else 3 when the Uber level is stale (`stale_months` > 0) and either the
    80% range of its move over those months (`level_spread`, the sd of the log move) holds the taxi's fare or
    p_uber_cheaper is within SAME_MARGIN of a coin flip; else 2 when p_uber_cheaper is within SAME_MARGIN of a coin
    flip (the data cannot tell); else 0 (the answer names the cheaper service)."""
    gap = np.abs(taxi_fare - uber_fare)
    close = gap < np.maximum(SAME_PRICE_DOLLARS, SAME_PRICE_SHARE * np.minimum(taxi_fare, uber_fare))
    unsure = np.abs(p_uber_cheaper - 0.5) < SAME_MARGIN
    stale = np.zeros(len(gap), dtype=bool) if stale_months is None else np.asarray(stale_months) > 0
    if level_spread is not None:
        ratio = np.abs(np.log(np.maximum(taxi_fare, 0.01) / np.maximum(uber_fare, 0.01)))
        unsettled = stale & (ratio < Z_80 * np.asarray(level_spread))
    else:
        unsettled = np.zeros(len(gap), dtype=bool)
    return np.where(close, 1, np.where(stale & (unsure | unsettled), 3, np.where(unsure, 2, 0)))


def quote_reasons(prices: pd.DataFrame) -> np.ndarray:
    """answer_reasons of a predict_frame result (before the API's rounding to cents)."""
    return answer_reasons(
        prices["taxi_fare"].to_numpy(),
        prices["uber_fare"].to_numpy(),
        prices["p_uber_cheaper"].to_numpy(),
        prices["uber_stale_months"].to_numpy(),
        prices["uber_level_spread"].to_numpy(),
    )


def load_version(models_dir: Path, version: str) -> FareModel:
    """Load one registered version; raises RegistryError when it is missing or unreadable."""
    path = Path(models_dir) / version / MODEL_FILE
    if not path.is_file():
        raise RegistryError(f"model version {version!r} not found in {models_dir}")
    try:
        with path.open("rb") as fh:
            model = pickle.load(fh)  # noqa: S301 - our own registry files
    except Exception as exc:
        raise RegistryError(f"model version {version!r} cannot be read: {exc}") from exc
    if not isinstance(model, FareModel):
        raise RegistryError(f"{path} does not hold a FareModel")
    model.version = version
    return model


def read_current(models_dir: Path) -> str | None:
    """The version named by `<models_dir>/CURRENT`, or None when there is none."""
    try:
        name = (Path(models_dir) / CURRENT_FILE).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name or None


def load_current(models_dir: Path) -> FareModel | None:
    """The current model, or None when nothing has been promoted yet."""
    version = read_current(models_dir)
    if version is None:
        return None
    return load_version(models_dir, version)
