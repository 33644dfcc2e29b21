"""Training: the time-based holdout, fitting both fare models, and the train stage (mart -> registry)."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fares.ml import OUTCOME_COLUMNS, SERVICES, RegistryError, TrainingDataError
from fares.ml.drift import DEFAULT_MONTHLY_DRIFT
from fares.ml.features import (
    FEATURE_NAMES,
    MART_FEATURES,
    build_matrix,
    build_pair_stats,
    build_route_table,
    build_zone_table,
    leave_one_out,
    mart_columns,
    request_columns,
)
from fares.ml.holdout import holdout_start, plan_holdout, split_holdout
from fares.ml.lookups import Lookups, load_lookups
from fares.ml.predict import (
    SUPPORT_LABELS,
    FareModel,
    PriceLevels,
    ServiceModel,
    support_bucket,
)
from fares.ml.provenance import code_version, library_versions
from fares.ml.registry import Registry
from fares.ml.sample import fit_threads, load_training_sample
from fares.ml.tariff import Tariff, UberCharges

if TYPE_CHECKING:
    from fares.config.settings import Settings
    from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("service", "pickup_at", "pickup_zone_id", "dropoff_zone_id", "rider_fare")
MIN_ROWS_PER_SERVICE = 20
MIN_FARE = 1.0  # dollars; the log target needs a floor, and no real fare is lower
DEFAULT_PARAMS: dict[str, Any] = {
    "max_iter": 300,
    "learning_rate": 0.1,
    "max_leaf_nodes": 31,
    "min_samples_leaf": 20,
    "l2_regularization": 1.0,
    "n_iter_no_change": 15,
    "random_state": 0,
}


@dataclass
class TrainOutcome:
    """What one training run produced and decided."""

    version: str
    metrics: dict
    promoted: bool
    report_path: Path
    baseline_metrics: dict
    previous_version: str | None = None
    reason: str = ""
    timings: dict[str, float] = field(default_factory=dict)
    retrained: bool = True

    def summary(self) -> str:
        """A few lines for people: the decision, MAE per service against the baseline, and the report."""
        lines = [
            (
                f"model version {self.version}: {'promoted to current' if self.promoted else 'kept, NOT promoted'}"
                f" ({self.reason})"
            )
        ]
        for service, m in self.metrics.get("services", {}).items():
            lines.append(
                f"  {service:<5} holdout MAE ${m['model']['mae']:.2f} (baseline ${m['baseline']['mae']:.2f}, "
                f"{m['mae_improvement_pct']:+.1f}% better)"
            )
        lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def check_training(training: pd.DataFrame) -> None:
    """Raise TrainingDataError when columns are missing, the frame is empty, or a service is absent or too thin."""
    missing = [c for c in REQUIRED_COLUMNS if c not in training.columns]
    if missing:
        raise TrainingDataError(f"training data lacks column(s) {', '.join(missing)}")
    if training.empty:
        raise TrainingDataError("the training data is empty: run ingest and transform first")
    counts = training["service"].value_counts()
    for service in SERVICES:
        if counts.get(service, 0) < MIN_ROWS_PER_SERVICE:
            raise TrainingDataError(
                f"the training data has {counts.get(service, 0)} {service!r} rows (at least {MIN_ROWS_PER_SERVICE} "
                f"needed): the training window must hold both yellow taxi and Uber trips"
            )


def _residual_quantiles(resid: np.ndarray, log_count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """0.1/0.9 quantiles of log residuals per route-support bucket (a thin bucket borrows the next better-known one's,
    widened by a quarter, so less support never means a narrower band)."""
    bucket = support_bucket(log_count)
    n = len(SUPPORT_LABELS)
    q_low, q_high = np.zeros(n), np.zeros(n)
    measured = np.zeros(n, dtype=bool)
    overall = (np.quantile(resid, 0.1), np.quantile(resid, 0.9)) if len(resid) else (0.0, 0.0)
    for b in reversed(range(n)):
        rows = resid[bucket == b]
        measured[b] = len(rows) >= 30
        if measured[b]:
            q_low[b], q_high[b] = np.quantile(rows, 0.1), np.quantile(rows, 0.9)
        else:
            q_low[b], q_high[b] = overall if b == n - 1 else (q_low[b + 1] * 1.25, q_high[b + 1] * 1.25)
    # monotone: never narrower than a better-known bucket that was measured (a borrowed guess for a thin bucket does
    # not widen the buckets that have their own residuals)
    envelope = (0.0, 0.0)
    for b in reversed(range(n)):
        if measured[b]:
            envelope = (min(envelope[0], q_low[b]), max(envelope[1], q_high[b]))
        q_low[b], q_high[b] = min(q_low[b], envelope[0]), max(q_high[b], envelope[1])
    return np.minimum(q_low, 0.0), np.maximum(q_high, 0.0)


def _fit_service(
    x: np.ndarray, y: np.ndarray, at: np.ndarray, log_count: np.ndarray, params: dict[str, Any], n_threads: int | None
) -> ServiceModel:
    """One service: the latest tenth (by time) stops the boosting early and calibrates the low/high band."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _fit_boosted(HistGradientBoostingRegressor, x, y, at, log_count, params)


def _fit_boosted(
    estimator: Any, x: np.ndarray, y: np.ndarray, at: np.ndarray, log_count: np.ndarray, params: dict[str, Any]
) -> ServiceModel:
    """Fit one regressor (early-stopped on the latest tenth when there are enough rows) and its bands by support.

    The validation rows' own trips are inside the typicals (the training window), so their support is counted
    without them: a trip seen once in training counts as an unseen route, as it would be for a new request.
    """
    order = np.argsort(at, kind="stable")
    n_val = len(order) // 10 if len(order) >= 500 else 0
    fit_idx, val_idx = order[: len(order) - n_val], order[len(order) - n_val :]
    if n_val:
        params = {**params, "early_stopping": True, "validation_fraction": None}
        regressor = estimator(loss="squared_error", **params)
        regressor.fit(x[fit_idx], y[fit_idx], X_val=x[val_idx], y_val=y[val_idx])
    else:  # too few rows to spare a slice: fixed size, band from in-sample residuals
        params = {**params, "early_stopping": False, "max_iter": min(params["max_iter"], 100)}
        regressor = estimator(loss="squared_error", **params).fit(x, y)
        val_idx = order
    loo = np.log1p(np.maximum(np.expm1(log_count[val_idx]) - 1, 0))
    q_low, q_high = _residual_quantiles(y[val_idx] - regressor.predict(x[val_idx]), loo)
    return ServiceModel(regressor, q_low, q_high)


def fit_fare_model(
    training: pd.DataFrame,
    zones: pd.DataFrame,
    params: dict[str, Any] | None = None,
    n_threads: int | None = 1,
    lookups: Lookups | None = None,
) -> FareModel:
    """Fit the taxi and Uber models on `training` (ml_fare_training rows of the training window) with dbt's lookups.

    Each model learns log(fare / base): taxi's base is the meter under the tariff in force at the pickup applied to
    the zone pair's typical trip at that hour, Uber's the month's price level times the typical trip's meter units.
    Features are the mart's MART_FEATURES columns when present (else read from the lookups, as for a live request).
    Without `lookups` (DB-free tests, benchmarks) they are built from `training` and `zones` by ml.simulate.
    `n_threads` (OpenMP, None = all cores) is 1 by default: OpenMP threads spin badly on busy cores.
    """
    check_training(training)
    if lookups is None:
        from fares.ml.simulate import build_lookups

        lookups = build_lookups(training, zones)
    zones = lookups.zones
    table = build_zone_table(zones)
    pu = training["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = training["dropoff_zone_id"].to_numpy(dtype=np.int64)
    inside = (pu >= 0) & (pu < table.size) & (do >= 0) & (do < table.size)
    inside[inside] = table.known[pu[inside]] & table.known[do[inside]]
    if not inside.all():
        log.warning("dropping %d training rows whose zones are not in dim_zones", int((~inside).sum()))
        training, pu, do = training[inside], pu[inside], do[inside]
        check_training(training)
    routes = build_route_table(lookups.zone_pairs, table.size)
    pairs = build_pair_stats(lookups.typicals, routes, table.size)
    at = pd.to_datetime(training["pickup_at"]).to_numpy()
    cols = (
        mart_columns(training)
        if set(MART_FEATURES) <= set(training.columns)
        else request_columns(at, pu, do, table, routes)
    )
    x = build_matrix(cols, pu, do, table, pairs)
    hour = np.asarray(cols["pickup_hour"], dtype=np.int64)
    typical = None
    if set(OUTCOME_COLUMNS) <= set(training.columns):
        # the training trips are inside the typicals: each sees its pair x hour without itself
        miles, minutes, loo_count = leave_one_out(
            lookups.typicals,
            routes,
            table.size,
            (pu, do, hour),
            (training["trip_miles"].to_numpy(dtype=float), training["duration_minutes"].to_numpy(dtype=float)),
        )
        for name, values in (("pair_miles", miles), ("pair_minutes", minutes), ("pair_log_count", loo_count)):
            x[:, FEATURE_NAMES.index(name)] = values
        typical = (miles, minutes)
    model = FareModel(
        services={},
        zone_table=table,
        routes=routes,
        pairs=pairs,
        tariff=Tariff(lookups.rate_card),
        uber_charges=UberCharges(lookups.hvfhv_charges) if lookups.hvfhv_charges is not None else None,
        levels=PriceLevels.from_frame(lookups.price_levels, lookups.price_moves),
        zones=zones.reset_index(drop=True).copy(),
        trained_from=str(pd.Timestamp(at.min()).date()),
        trained_to=str(pd.Timestamp(at.max()).date()),
    )
    base = model.bases(at, pu, do, hour, typical)
    log_count = pairs.log_count[pu, do, hour].astype(float)
    fare = np.log(np.maximum(training["rider_fare"].to_numpy(dtype=float), MIN_FARE))
    for service in SERVICES:
        mask = (training["service"] == service).to_numpy()
        y = fare[mask] - np.log(np.maximum(base[service][mask], 0.5))
        merged = {**DEFAULT_PARAMS, **(params or {})}
        model.services[service] = _fit_service(x[mask], y, at[mask], log_count[mask], merged, n_threads)
        log.info("fitted %s on %d rows (%d trees)", service, int(mask.sum()), model.services[service].regressor.n_iter_)
        if service == "taxi":
            model.taxi_monthly_drift = measure_monthly_drift(at[mask], y)
    model.metrics = {"n_train": {s: int((training["service"] == s).sum()) for s in SERVICES}}
    return model


def measure_monthly_drift(at: np.ndarray, y: np.ndarray) -> float:
    """How far the fare-to-meter ratio moves per month: the root mean square of the steps between the monthly medians
    of `y` (log ratios), per month apart; DEFAULT_MONTHLY_DRIFT when the window holds a single month. A trend counts as
    much as noise: both take a quote away from what the window saw."""
    month = at.astype("datetime64[M]").astype(np.int64)
    medians = pd.Series(y).groupby(month).median()
    if len(medians) < 2:
        return DEFAULT_MONTHLY_DRIFT
    steps = np.diff(medians.to_numpy()) / np.diff(medians.index.to_numpy())
    return float(np.sqrt(np.mean(steps**2)))


def describe_drift(model: FareModel) -> dict[str, Any]:
    """How the bands widen outside what the models saw: the taxi ratio's monthly drift (per month outside the window)
    and the Uber level's drift (per month since its newest known level), as metrics.json and the report show them."""
    drift = getattr(model.levels, "drift", None)
    return {
        "taxi_monthly_drift": float(getattr(model, "taxi_monthly_drift", 0.0)),
        "uber_level": drift.describe() if drift is not None else {"monthly_noise": model.levels.monthly_drift},
    }


def fingerprint(training: pd.DataFrame) -> str:
    """A sha256 of the training rows' ids, times, zones and fares (row order independent)."""
    cols = [
        c
        for c in ("trip_id", "service", "pickup_at", "pickup_zone_id", "dropoff_zone_id", "rider_fare")
        if c in training.columns
    ]
    hashes = np.sort(pd.util.hash_pandas_object(training[cols], index=False).to_numpy())
    return hashlib.sha256(hashes.tobytes()).hexdigest()


def _score_current(
    registry: Registry, holdout: pd.DataFrame, baseline: Any
) -> tuple[str | None, float | None, float | None]:
    """The current model's MAE and decision agreement on this run's holdout (its stored figures if it cannot
    predict these rows)."""
    from fares.ml.evaluate import score
    from fares.ml.predict import load_version

    current = registry.current_version()
    if current is None or not registry.exists(current):
        return None, None, None
    try:
        mae, agreement = score(load_version(registry.models_dir, current), holdout, baseline)
        return current, mae, agreement
    except (ValueError, KeyError, AttributeError, RegistryError) as exc:
        log.warning("current model %s cannot score the new holdout (%s); using its stored figures", current, exc)
        stored = registry.metrics(current).get("metrics", {})
        mae = stored.get("model_mae")
        return current, float(mae) if mae is not None else None, None


MAX_AGREEMENT_LOSS = 0.05  # a new model may call the cheaper service this much less often right and still replace


def _decide_promotion(
    registry: Registry, holdout: pd.DataFrame, baseline: Any, model_mae: float, agreement: float, margin: float
) -> tuple[bool, str | None, float | None, str]:
    """Promote when there is no current model, or on the same holdout the new MAE is at most the current one's plus
    `margin` and the new decision agreement is not more than MAX_AGREEMENT_LOSS below the current one's."""
    previous, previous_mae, previous_agreement = _score_current(registry, holdout, baseline)
    mae_ok = previous_mae is None or model_mae <= previous_mae + margin
    agreement_ok = (
        previous_agreement is None
        or not np.isfinite(previous_agreement)
        or not np.isfinite(agreement)
        or agreement >= previous_agreement - MAX_AGREEMENT_LOSS
    )
    promote = mae_ok and agreement_ok
    if previous is None:
        return promote, previous, previous_mae, "no current model"
    shown = "unknown" if previous_mae is None else f"${previous_mae:.2f}"
    said = "unknown" if previous_agreement is None else f"{previous_agreement:.0%}"
    return (
        promote,
        previous,
        previous_mae,
        (
            f"holdout MAE ${model_mae:.2f} vs current {previous} {shown} (margin ${margin:.2f}); "
            f"cheaper-call agreement {agreement:.0%} vs {said}"
        ),
    )


def _current_if_unchanged(registry: Registry, fp: str) -> TrainOutcome | None:
    """The current model's outcome when it was trained on exactly this data by this code and these libraries: a nightly
    run with no new data then keeps it instead of registering a copy of it."""
    current = registry.current_version()
    if not current:
        return None
    doc = registry.metrics(current)
    if (
        doc.get("data_fingerprint") != fp
        or doc.get("code_version") in (None, "unknown")
        or doc.get("code_version") != code_version()
        or doc.get("libraries") != library_versions()
    ):
        return None
    log.info("training data and code unchanged since %s: not retrained", current)
    return TrainOutcome(
        version=current,
        metrics=doc.get("metrics", {}),
        promoted=False,
        report_path=registry.report_path(current),
        baseline_metrics=doc.get("baseline_metrics", {}),
        previous_version=current,
        reason=f"training data and code unchanged since {current}: kept",
        retrained=False,
    )


def _data_source(wh: Warehouse, training: pd.DataFrame) -> dict[str, Any]:
    """What the training rows came from (TLC months and sample, or synthetic), by the ingest ledger."""
    from fares.ingestion.provenance import describe_data_source

    months = pd.to_datetime(training["pickup_at"]).dt.strftime("%Y-%m").unique().tolist()
    return describe_data_source(wh, months)


def _holdout_summary(lookups: Lookups, training: pd.DataFrame, settings: Settings) -> dict[str, Any]:
    """What the holdout holds (marts.ml_holdout_window over every trip, else the same rule on the sample), against
    the minimums asked, with a sentence that says plainly when it is too small to mean much."""
    plan = lookups.holdout or plan_holdout(
        training, min_trips=settings.holdout_min_trips, min_cells=settings.holdout_min_cells
    )
    return {
        "from": str(plan.start),
        "shared_hours": plan.shared_hours,
        "holdout_hours": plan.holdout_hours,
        "trips": plan.trips,
        "route_hour_cells_with_both": plan.cells,
        "has_minimum": plan.has_minimum,
        "min_trips": settings.holdout_min_trips,
        "min_cells": settings.holdout_min_cells,
        "statement": plan.describe(settings.holdout_min_trips, settings.holdout_min_cells),
    }


def train_models(
    settings: Settings, wh: Warehouse, params: dict[str, Any] | None = None, publish: bool = True
) -> TrainOutcome:
    """The train stage: bounded mart sample -> holdout split -> fit -> judge vs baseline -> save -> promote if no worse.

    The sample is the newest `settings.train_months` months with taxi or Uber trips, at most
    `settings.train_rows_per_service` trips of each service shared among its months (ml/sample.py), so memory and time
    do not grow with the history loaded.

    With publish=False the model is registered and judged but CURRENT is left alone: `promoted` then says it should
    become current, and the caller's publish step (the scheduler's) moves the pointer.

    Raises TrainingDataError when the mart is missing, empty or lacks a service.
    """
    from fares.ml.evaluate import BaselineModel, brier_at_scale, data_coverage, evaluate_holdout, fit_decision_scale
    from fares.ml.report import render_report

    started = time.perf_counter()
    # the bundle's zones come from the lookups
    training, parts = load_training_sample(settings, wh)
    check_training(training)
    loaded = time.perf_counter()
    registry = Registry(settings.models_dir)
    fp = fingerprint(training)
    if params is None and (same := _current_if_unchanged(registry, fp)):
        return same
    lookups = load_lookups(settings, wh)
    train, holdout = split_holdout(training, lookups.holdout_from)
    check_training(train)
    model = fit_fare_model(train, lookups.zones, params, n_threads=fit_threads(settings), lookups=lookups)
    fitted = time.perf_counter()
    # The cheaper call's probability, recalibrated on the training window's latest tenth of shared hours (never on
    # the holdout it is judged on); the holdout's uncalibrated Brier score is kept to show what it changed.
    calibration = fit_decision_scale(model, train[train["pickup_at"] >= holdout_start(train, 0.1)], model.zone_table)
    model.p_scale = calibration["scale"]
    baseline = BaselineModel.fit(train, model.zone_table)
    metrics, detail = evaluate_holdout(model, baseline, holdout)
    calibration["holdout_brier_uncalibrated"] = brier_at_scale(model, holdout, baseline, 1.0)
    metrics["cheaper_agreement"]["calibration"] = calibration
    promote, previous, previous_mae, reason = _decide_promotion(
        registry,
        holdout,
        baseline,
        metrics["model_mae"],
        metrics["cheaper_agreement"]["model"],
        settings.promotion_margin,
    )
    windows = {s: [str(part.pickup_at.min()), str(part.pickup_at.max())] for s, part in holdout.groupby("service")}
    metrics.update(
        {
            "n_train": {s: int(n) for s, n in train.service.value_counts().items()},
            "holdout_window": windows,
            "sample": {
                "months": settings.train_months,
                "rows_per_service": settings.train_rows_per_service,
                "strata": [vars(p) for p in parts],
            },
            "holdout_from": str(lookups.holdout_from),
            "holdout": _holdout_summary(lookups, training, settings),
            "data_coverage": data_coverage(train, holdout),
            "drift": describe_drift(model),
            "promotion": {
                "previous_version": previous,
                "previous_mae": previous_mae,
                "margin": settings.promotion_margin,
                "promoted": promote,
                "reason": reason,
            },
        }
    )
    model.metrics = metrics
    model.data_source = _data_source(wh, training)
    version = registry.next_version(fp)
    timings = {"load_s": loaded - started, "fit_s": fitted - loaded, "total_s": time.perf_counter() - started}
    info = {
        "training window": f"{model.trained_from} .. {model.trained_to}",
        "holdout windows": windows,
        "training rows": metrics["n_train"],
        "holdout": metrics["holdout"]["statement"],
        "data source": model.data_source.get("label", "unknown"),
        "sample (month, service: kept of available)": {
            f"{p.month} {p.service}": f"{p.kept:,} of {p.available:,}" for p in parts
        },
        "data fingerprint": fp[:16],
        "code version": code_version(),
        "promotion": ("promoted: " if promote else "NOT promoted: ") + reason,
        "timings (s)": {k: round(v, 1) for k, v in timings.items()},
    }
    baseline_metrics = {s: metrics["services"][s]["baseline"] for s in SERVICES}
    registry.save(
        model,
        fingerprint=fp,
        report_html=render_report(version, metrics, detail, info),
        version=version,
        extra={"baseline_metrics": baseline_metrics, "data_source": model.data_source},
    )
    if promote and publish:
        registry.promote(version)
    log.info("trained %s (%s): %s", version, "promoted" if promote else "not promoted", reason)
    return TrainOutcome(
        version=version,
        metrics=metrics,
        promoted=promote,
        report_path=registry.report_path(version),
        baseline_metrics=baseline_metrics,
        previous_version=previous,
        reason=reason,
        timings=timings,
    )
