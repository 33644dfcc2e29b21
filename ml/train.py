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

from fares.ml import SERVICES, RegistryError, TrainingDataError
from fares.ml.features import FEATURE_NAMES, ZoneTable, build_features, build_pair_stats, build_zone_table
from fares.ml.predict import FareModel, ServiceModel
from fares.ml.registry import Registry, code_version
from fares.ml.sample import fit_threads, load_training_sample

if TYPE_CHECKING:
    from fares.settings import Settings
    from fares.warehouse import Warehouse

log = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = ("service", "pickup_at", "pickup_zone_id", "dropoff_zone_id", "rider_fare")
HOLDOUT_FRACTION = 0.2
PAIR_FOLDS = 5
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
            f"model version {self.version}: {'promoted to current' if self.promoted else 'kept, NOT promoted'}"
            f" ({self.reason})"
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
                f"needed): the aligned window must hold both yellow taxi and Uber trips"
            )


def split_holdout(training: pd.DataFrame, fraction: float = HOLDOUT_FRACTION) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Time-based split: the latest `fraction` of each service's rows (by pickup time) is the holdout."""
    ordered = training.sort_values(["service", "pickup_at"], kind="stable")
    rank = ordered.groupby("service").cumcount().to_numpy()
    size = ordered.groupby("service")["service"].transform("size").to_numpy()
    is_holdout = rank >= np.ceil(size * (1 - fraction))
    return ordered[~is_holdout], ordered[is_holdout]


def _residual_quantiles(raw: np.ndarray, actual_log: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, ...]:
    """0.1/0.9 quantiles of log residuals per bin of the prediction (bins hold at least 50 rows)."""
    n_bins = int(max(1, min(n_bins, len(raw) // 50)))
    edges = np.quantile(raw, np.linspace(0, 1, n_bins + 1)[1:-1]) if n_bins > 1 else np.array([])
    bins = np.searchsorted(edges, raw)
    resid = actual_log - raw
    q_low = np.array([np.quantile(resid[bins == b], 0.1) if (bins == b).any() else 0.0 for b in range(n_bins)])
    q_high = np.array([np.quantile(resid[bins == b], 0.9) if (bins == b).any() else 0.0 for b in range(n_bins)])
    return edges, np.minimum(q_low, 0.0), np.maximum(q_high, 0.0)


def _out_of_fold_features(training: pd.DataFrame, at: np.ndarray, table: ZoneTable) -> np.ndarray:
    """Features whose zone-pair statistics come from the other folds, so no row sees its own trip in them.

    In-sample pair medians let the model over-trust thin pairs, which then miss on new data.
    """
    pu = training["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = training["dropoff_zone_id"].to_numpy(dtype=np.int64)
    x = np.empty((len(training), len(FEATURE_NAMES)))
    fold = np.random.default_rng(0).integers(0, PAIR_FOLDS, len(training))
    for k in range(PAIR_FOLDS):
        rows = fold == k
        pairs = build_pair_stats(training[~rows], table)
        x[rows] = build_features(at[rows], pu[rows], do[rows], table, pairs)
    return x


def _fit_service(
    x: np.ndarray, y: np.ndarray, at: np.ndarray, params: dict[str, Any], n_threads: int | None
) -> ServiceModel:
    """One service: the latest tenth (by time) stops the boosting early and calibrates the low/high band."""
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=n_threads, user_api="openmp"):
        return _fit_boosted(HistGradientBoostingRegressor, x, y, at, params)


def _fit_boosted(estimator: Any, x: np.ndarray, y: np.ndarray, at: np.ndarray, params: dict[str, Any]) -> ServiceModel:
    """Fit one regressor (early-stopped on the latest tenth when there are enough rows) and its band."""
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
    edges, q_low, q_high = _residual_quantiles(regressor.predict(x[val_idx]), y[val_idx])
    return ServiceModel(regressor, edges, q_low, q_high)


def fit_fare_model(
    training: pd.DataFrame, zones: pd.DataFrame, params: dict[str, Any] | None = None, n_threads: int | None = 1
) -> FareModel:
    """Fit the taxi and Uber models on `training` (ml_fare_training-shaped; no DB) with zones from dim_zones.

    Needs service, pickup_at, pickup_zone_id, dropoff_zone_id, rider_fare; trip_miles and duration_minutes, when
    present, only feed the zone-pair typical miles/minutes. Rows whose zones are not in `zones` are dropped.
    `params` override the HistGradientBoostingRegressor settings. `n_threads` (OpenMP, None = all cores) is 1 by
    default: 1M rows fit in ~30 s on one core, while OpenMP threads spin badly on busy cores (366 s measured).
    """
    check_training(training)
    table = build_zone_table(zones)
    pu = training["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = training["dropoff_zone_id"].to_numpy(dtype=np.int64)
    inside = (pu >= 0) & (pu < table.size) & (do >= 0) & (do < table.size)
    inside[inside] = table.known[pu[inside]] & table.known[do[inside]]
    if not inside.all():
        log.warning("dropping %d training rows whose zones are not in dim_zones", int((~inside).sum()))
        training = training[inside]
        check_training(training)
    pairs = build_pair_stats(training, table)
    at = pd.to_datetime(training["pickup_at"]).to_numpy()
    x = _out_of_fold_features(training, at, table)
    y = np.log(np.maximum(training["rider_fare"].to_numpy(dtype=float), MIN_FARE))
    services: dict[str, ServiceModel] = {}
    for service in SERVICES:
        mask = (training["service"] == service).to_numpy()
        services[service] = _fit_service(x[mask], y[mask], at[mask], {**DEFAULT_PARAMS, **(params or {})}, n_threads)
        log.info("fitted %s on %d rows (%d trees)", service, int(mask.sum()), services[service].regressor.n_iter_)
    return FareModel(
        services=services,
        zone_table=table,
        pairs=pairs,
        zones=zones.reset_index(drop=True).copy(),
        trained_from=str(pd.Timestamp(at.min()).date()),
        trained_to=str(pd.Timestamp(at.max()).date()),
        metrics={"n_train": {s: int((training["service"] == s).sum()) for s in SERVICES}},
    )


def fingerprint(training: pd.DataFrame) -> str:
    """A sha256 of the training rows' ids, times, zones and fares (row order independent)."""
    cols = [
        c
        for c in ("trip_id", "service", "pickup_at", "pickup_zone_id", "dropoff_zone_id", "rider_fare")
        if c in training.columns
    ]
    hashes = np.sort(pd.util.hash_pandas_object(training[cols], index=False).to_numpy())
    return hashlib.sha256(hashes.tobytes()).hexdigest()


def _score_current(registry: Registry, holdout: pd.DataFrame) -> tuple[str | None, float | None]:
    """The current model's MAE score on this run's holdout (its stored score if it cannot predict these rows)."""
    from fares.ml.evaluate import score
    from fares.ml.predict import load_version

    current = registry.current_version()
    if current is None or not registry.exists(current):
        return None, None
    try:
        return current, score(load_version(registry.models_dir, current), holdout)
    except (ValueError, KeyError, RegistryError) as exc:
        log.warning("current model %s cannot score the new holdout (%s); using its stored MAE", current, exc)
        stored = registry.metrics(current).get("metrics", {}).get("model_mae")
        return current, float(stored) if stored is not None else None


def _decide_promotion(
    registry: Registry, holdout: pd.DataFrame, model_mae: float, margin: float
) -> tuple[bool, str | None, float | None, str]:
    """Promote when there is no current model or the new MAE is at most the current one's (same holdout) + margin."""
    previous, previous_mae = _score_current(registry, holdout)
    promote = previous_mae is None or model_mae <= previous_mae + margin
    if previous is None:
        return promote, previous, previous_mae, "no current model"
    shown = "unknown" if previous_mae is None else f"${previous_mae:.2f}"
    return (
        promote,
        previous,
        previous_mae,
        (f"holdout MAE ${model_mae:.2f} vs current {previous} {shown} (margin ${margin:.2f})"),
    )


def _current_if_unchanged(registry: Registry, fp: str) -> TrainOutcome | None:
    """The current model's outcome when it was trained on exactly this data by this code: a nightly run with no new
    data then keeps it instead of registering a copy of it."""
    current = registry.current_version()
    if not current:
        return None
    doc = registry.metrics(current)
    if (
        doc.get("data_fingerprint") != fp
        or doc.get("code_version") in (None, "unknown")
        or doc.get("code_version") != code_version()
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


def train_models(
    settings: Settings, wh: Warehouse, params: dict[str, Any] | None = None, publish: bool = True
) -> TrainOutcome:
    """The train stage: bounded mart sample -> holdout split -> fit -> judge vs baseline -> save -> promote if not worse.

    The sample is the newest `settings.train_months` aligned months, at most `settings.train_rows_per_month` trips
    per service and month (ml/sample.py), so memory and time do not grow with the history loaded.

    With publish=False the model is registered and judged but CURRENT is left alone: `promoted` then says it should
    become current, and the caller's publish step (the scheduler's) moves the pointer.

    Raises TrainingDataError when the mart is missing, empty or lacks a service.
    """
    from fares.ml.evaluate import BaselineModel, evaluate_holdout
    from fares.ml.report import render_report

    started = time.perf_counter()
    if settings.engine == "spark":
        from fares.ml.spark_reader import load_training_sample_spark

        training, zones, parts = load_training_sample_spark(settings)
    else:
        training, zones, parts = load_training_sample(settings, wh)
    check_training(training)
    loaded = time.perf_counter()
    registry = Registry(settings.models_dir)
    fp = fingerprint(training)
    if params is None and (same := _current_if_unchanged(registry, fp)):
        return same
    train, holdout = split_holdout(training)
    model = fit_fare_model(train, zones, params, n_threads=fit_threads(settings))
    fitted = time.perf_counter()
    metrics, detail = evaluate_holdout(model, BaselineModel.fit(train, model.zone_table), holdout)
    promote, previous, previous_mae, reason = _decide_promotion(
        registry, holdout, metrics["model_mae"], settings.promotion_margin
    )
    windows = {s: [str(part.pickup_at.min()), str(part.pickup_at.max())] for s, part in holdout.groupby("service")}
    metrics.update(
        {
            "n_train": {s: int(n) for s, n in train.service.value_counts().items()},
            "holdout_window": windows,
            "sample": {
                "months": settings.train_months,
                "rows_per_service_and_month": settings.train_rows_per_month,
                "strata": [vars(p) for p in parts],
            },
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
    version = registry.next_version(fp)
    timings = {"load_s": loaded - started, "fit_s": fitted - loaded, "total_s": time.perf_counter() - started}
    info = {
        "training window": f"{model.trained_from} .. {model.trained_to}",
        "holdout windows": windows,
        "training rows": metrics["n_train"],
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
        extra={"baseline_metrics": baseline_metrics},
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
