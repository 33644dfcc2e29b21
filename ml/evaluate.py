"""Judging on the time-based holdout: the baseline (median by zone pair x hour with fallbacks) and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fares.ml import SERVICES
from fares.ml.features import BOROUGHS, ZoneTable, time_parts
from fares.ml.predict import SUPPORT_LABELS, answer, answer_reasons, support_bucket

RELIABILITY_BINS = np.linspace(0, 1, 6)  # p_uber_cheaper in fifths


class FarePredictor(Protocol):
    """What is judged: a FareModel, or anything else that prices a trips frame."""

    def predict_frame(self, trips: pd.DataFrame) -> pd.DataFrame:
        """Fares for `trips`, with the input's index."""
        ...


class ScaledPredictor(FarePredictor, Protocol):
    """A FarePredictor whose p_uber_cheaper is Phi(p_scale * z): what recalibration sets (FareModel)."""

    p_scale: float


def _keys(frame: pd.DataFrame, table: ZoneTable) -> pd.DataFrame:
    """Integer lookup keys for the baseline levels: cell (pair x hour), pair, borough pair."""
    pu = frame["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = frame["dropoff_zone_id"].to_numpy(dtype=np.int64)
    hour, _, _ = time_parts(frame["pickup_at"].to_numpy())
    pair = pu * table.size + do
    bpair = table.borough_code[pu].astype(np.int64) * len(BOROUGHS) + table.borough_code[do].astype(np.int64)
    return pd.DataFrame(
        {"cell": pair * 24 + hour, "pair": pair, "bpair": bpair, "hour": hour, "decision_cell": bpair * 24 + hour},
        index=frame.index,
    )


@dataclass
class BaselineModel:
    """Median fare by zone pair x hour, falling back to zone pair, then borough pair, then the service median."""

    table: ZoneTable
    medians: dict[str, dict[str, pd.Series]]
    overall: dict[str, float]

    @classmethod
    def fit(cls, training: pd.DataFrame, table: ZoneTable) -> BaselineModel:
        """Medians per level and service from the training split."""
        keys = _keys(training, table)
        fare = training["rider_fare"].to_numpy(dtype=float)
        medians: dict[str, dict[str, pd.Series]] = {}
        overall: dict[str, float] = {}
        for service in SERVICES:
            mask = (training["service"] == service).to_numpy()
            part = keys[mask].assign(fare=fare[mask])
            medians[service] = {level: part.groupby(level)["fare"].median() for level in ("cell", "pair", "bpair")}
            overall[service] = float(np.median(fare[mask])) if mask.any() else float(np.median(fare))
        return cls(table, medians, overall)

    def predict(self, frame: pd.DataFrame, service: str) -> np.ndarray:
        """The baseline fare of `service` for every row of `frame`."""
        keys = _keys(frame, self.table)
        out = np.full(len(frame), np.nan)
        for level in ("cell", "pair", "bpair"):
            found = self.medians[service][level].reindex(keys[level].to_numpy()).to_numpy()
            out = np.where(np.isnan(out), found, out)
        return np.where(np.isnan(out), self.overall[service], out)


def regression_metrics(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    """MAE and RMSE in dollars, MAPE in percent (rows with a positive fare), and the row count."""
    err = predicted - actual
    positive = actual > 0
    return {
        "mae": float(np.mean(np.abs(err))) if len(err) else float("nan"),
        "rmse": float(np.sqrt(np.mean(err**2))) if len(err) else float("nan"),
        "mape": float(np.mean(np.abs(err[positive]) / actual[positive]) * 100) if positive.any() else float("nan"),
        "n": len(err),
    }


def _borough_pair(frame: pd.DataFrame, table: ZoneTable) -> np.ndarray:
    names = np.array(BOROUGHS)
    pu = names[table.borough_code[frame["pickup_zone_id"].to_numpy(dtype=np.int64)].astype(int)]
    do = names[table.borough_code[frame["dropoff_zone_id"].to_numpy(dtype=np.int64)].astype(int)]
    return np.char.add(np.char.add(pu.astype(str), " → "), do.astype(str))


def _grouped_mae(detail: pd.DataFrame, by: str) -> list[dict]:
    grouped = detail.assign(
        model_err=(detail.model - detail.actual).abs(), baseline_err=(detail.baseline - detail.actual).abs()
    )
    table = (
        grouped.groupby(["service", by])
        .agg(n=("actual", "size"), model_mae=("model_err", "mean"), baseline_mae=("baseline_err", "mean"))
        .reset_index()
    )
    return [{k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()} for row in table.to_dict("records")]


def _cell_medians(detail: pd.DataFrame) -> pd.DataFrame | None:
    """The median actual fare per decision cell (rows) and service (columns taxi, uber), for the cells holding trips of
    both services; None when one service has no trip at all."""
    actual = detail.pivot_table(index="decision_cell", columns="service", values="actual", aggfunc="median")
    if not set(SERVICES) <= set(actual.columns):
        return None
    return actual.dropna()


def _decision_detail(holdout: pd.DataFrame, predicted: pd.DataFrame, baseline: BaselineModel) -> pd.DataFrame:
    """Per trip, what the cell-level cheaper call is judged on (decision_metrics): its service, fare and decision
    cell, the model's p_uber_cheaper and the baseline's two fares."""
    return pd.DataFrame(
        {
            "service": holdout["service"].to_numpy(),
            "actual": holdout["rider_fare"].to_numpy(dtype=float),
            "decision_cell": _keys(holdout, baseline.table)["decision_cell"].to_numpy(),
            "p_uber_cheaper": predicted["p_uber_cheaper"].to_numpy(),
            "baseline_taxi": baseline.predict(holdout, "taxi"),
            "baseline_uber": baseline.predict(holdout, "uber"),
        }
    )


def _cell_outcomes(detail: pd.DataFrame) -> pd.DataFrame:
    """Borough pair x hour cells of the holdout with trips of both services (zone pair x hour cells rarely hold
    both): actual medians, the model's mean p_uber_cheaper and the baseline's call."""
    actual = _cell_medians(detail)
    if actual is None:
        return pd.DataFrame(columns=["uber_cheaper", "p", "model_says", "baseline_says"])
    grouped = detail.groupby("decision_cell")
    cells = pd.DataFrame({"uber_cheaper": (actual["uber"] < actual["taxi"]).astype(float)}, index=actual.index)
    cells["p"] = grouped["p_uber_cheaper"].mean().reindex(cells.index)
    cells["model_says"] = answer(cells["p"].to_numpy())
    med = grouped[["baseline_taxi", "baseline_uber"]].median().reindex(cells.index)
    cells["baseline_says"] = np.where(med["baseline_uber"] < med["baseline_taxi"], "uber", "taxi")
    return cells


CALIBRATION_SCALES = np.geomspace(0.1, 10, 81)  # candidate factors on z in p_uber_cheaper = Phi(scale * z)
MIN_CALIBRATION_CELLS = 30  # fewer cells with both services: keep the uncalibrated scale (1.0)
MIN_BRIER_GAIN = 0.05  # recalibrate only when that improves the Brier score by 5% on the calibration cells


def fit_decision_scale(model: ScaledPredictor, frame: pd.DataFrame, table: ZoneTable) -> dict[str, float]:
    """The factor on z in p_uber_cheaper = Phi(scale * z) that minimises the Brier score of the cell-level call on
    `frame` (trips of both services the fit did not learn from), with the figures behind the choice.

    Cells are the decision cells of decision_metrics (borough pair x hour with trips of both services), so the scale is
    fitted on exactly what the reliability table reports. Kept at 1.0 when there are too few cells or it would improve
    the Brier score by less than MIN_BRIER_GAIN (a fit on noise).
    """
    from scipy.special import ndtr, ndtri

    previous = model.p_scale
    model.p_scale = 1.0
    try:
        predicted = model.predict_frame(frame)
    finally:
        model.p_scale = previous
    z = ndtri(np.clip(predicted["p_uber_cheaper"].to_numpy(), 1e-12, 1 - 1e-12))
    detail = pd.DataFrame(
        {
            "service": frame["service"].to_numpy(),
            "actual": frame["rider_fare"].to_numpy(dtype=float),
            "decision_cell": _keys(frame, table)["decision_cell"].to_numpy(),
        }
    )
    actual = _cell_medians(detail)
    if actual is None:
        return {"scale": 1.0, "cells": 0, "brier_uncalibrated": float("nan"), "brier_calibrated": float("nan")}
    y = (actual["uber"] < actual["taxi"]).astype(float).to_numpy()
    codes = pd.Categorical(detail["decision_cell"], categories=actual.index).codes
    inside = codes >= 0
    counts = np.bincount(codes[inside], minlength=len(actual))

    def brier(scale: float) -> float:
        p = np.bincount(codes[inside], weights=ndtr(scale * z[inside]), minlength=len(actual)) / counts
        return float(np.mean((p - y) ** 2))

    before = brier(1.0) if len(actual) else float("nan")
    scores = [brier(k) for k in CALIBRATION_SCALES] if len(actual) else []
    best = float(CALIBRATION_SCALES[int(np.argmin(scores))]) if scores else 1.0
    after = min(scores) if scores else float("nan")
    if len(actual) < MIN_CALIBRATION_CELLS or not after < before * (1 - MIN_BRIER_GAIN):
        best, after = 1.0, before
    return {"scale": best, "cells": len(actual), "brier_uncalibrated": before, "brier_calibrated": after}


def decision_metrics(detail: pd.DataFrame) -> dict:
    """How the cheaper-service call fares on the holdout's cells: agreement, Brier score and a reliability table."""
    cells = _cell_outcomes(detail)
    if cells.empty:
        return {
            "cells": 0,
            "model": float("nan"),
            "baseline": float("nan"),
            "about_the_same": 0.0,
            "brier": float("nan"),
            "brier_base_rate": float("nan"),
            "reliability": [],
        }
    truth = np.where(cells["uber_cheaper"] > 0.5, "uber", "taxi")
    committed = cells["model_says"] != "about the same"
    p, y = cells["p"].to_numpy(), cells["uber_cheaper"].to_numpy()
    rate = float(y.mean())
    bins = np.clip(np.digitize(p, RELIABILITY_BINS[1:-1]), 0, len(RELIABILITY_BINS) - 2)
    table = [
        {
            "p_from": float(RELIABILITY_BINS[b]),
            "p_to": float(RELIABILITY_BINS[b + 1]),
            "cells": int((bins == b).sum()),
            "mean_p": float(p[bins == b].mean()),
            "uber_cheaper_share": float(y[bins == b].mean()),
        }
        for b in range(len(RELIABILITY_BINS) - 1)
        if (bins == b).any()
    ]
    return {
        "cells": len(cells),
        "model": float((cells["model_says"][committed] == truth[committed]).mean())
        if committed.any()
        else float("nan"),
        "model_all_cells": float((cells["model_says"] == truth).mean()),
        "baseline": float((cells["baseline_says"] == truth).mean()),
        "about_the_same": float(1 - committed.mean()),
        "brier": float(np.mean((p - y) ** 2)),
        "brier_base_rate": float(np.mean((rate - y) ** 2)),
        "reliability": table,
    }


MIN_CALIBRATION_TRIPS = 500  # fewer held-out trips: the per-trip calibration is reported as resting on too few
EVENT = (
    "Uber is cheaper for this trip: for a held-out Uber trip, its real fare was below the model's taxi quote for the "
    "same trip; for a held-out taxi trip, the model's Uber quote was below its real fare"
)


def trip_calibration(detail: pd.DataFrame) -> dict:
    """The event p_uber_cheaper predicts (EVENT), checked trip by trip on the holdout: one real fare against the
    other service's quote, so every held-out trip is a case (no cell needs both services). Brier score against a
    coin (0.25) and the base rate, a reliability table with its trip counts, and how often a named answer was right.

    `detail` holds service, actual, model_taxi, model_uber and p_uber_cheaper per trip (evaluate_holdout's).
    """
    if detail.empty:
        return {"event": EVENT, "trips": 0, "enough": False}
    uber = (detail["service"] == "uber").to_numpy()
    actual = detail["actual"].to_numpy(dtype=float)
    y = np.where(uber, actual < detail["model_taxi"].to_numpy(), detail["model_uber"].to_numpy() < actual)
    y = y.astype(float)
    p = detail["p_uber_cheaper"].to_numpy(dtype=float)
    rate = float(y.mean())
    bins = np.clip(np.digitize(p, RELIABILITY_BINS[1:-1]), 0, len(RELIABILITY_BINS) - 2)
    table = [
        {
            "p_from": float(RELIABILITY_BINS[b]),
            "p_to": float(RELIABILITY_BINS[b + 1]),
            "trips": int((bins == b).sum()),
            "mean_p": float(p[bins == b].mean()),
            "uber_cheaper_share": float(y[bins == b].mean()),
        }
        for b in range(len(RELIABILITY_BINS) - 1)
        if (bins == b).any()
    ]
    staleness = [detail[c].to_numpy() if c in detail else None for c in ("uber_stale_months", "uber_level_spread")]
    named = answer_reasons(detail["model_taxi"].to_numpy(), detail["model_uber"].to_numpy(), p, *staleness) == 0
    right = (p > 0.5) == (y > 0.5)
    return {
        "event": EVENT,
        "trips": len(y),
        "trips_by_service": {"uber": int(uber.sum()), "taxi": int((~uber).sum())},
        "enough": len(y) >= MIN_CALIBRATION_TRIPS,
        "uber_cheaper_share": rate,
        "brier": float(np.mean((p - y) ** 2)),
        "brier_coin": 0.25,
        "brier_base_rate": float(np.mean((rate - y) ** 2)),
        "named_share": float(named.mean()),
        "named_right": float(right[named].mean()) if named.any() else float("nan"),
        "reliability": table,
    }


def _coverage_by_support(detail: pd.DataFrame) -> list[dict]:
    """Band coverage per service and route-support bucket (unseen and rarely seen zone pair x hours included)."""
    rows = []
    for (service, bucket), part in detail.groupby(["service", "support"]):
        rows.append(
            {
                "service": service,
                "support": SUPPORT_LABELS[int(bucket)],
                "n": len(part),
                "coverage": float(part.covered.mean()),
                "model_mae": float((part.model - part.actual).abs().mean()),
            }
        )
    return rows


def _months_from_window(model: FarePredictor, holdout: pd.DataFrame) -> np.ndarray:
    """Whole months between each trip and the model's training window (0 inside it; 0 for a predictor without one)."""
    months_outside = getattr(model, "months_outside", None)
    if months_outside is None:
        return np.zeros(len(holdout), dtype=np.int64)
    return months_outside(pd.to_datetime(holdout["pickup_at"]).to_numpy())


def coverage_by_months(detail: pd.DataFrame) -> list[dict]:
    """Band coverage per service and months from the training window, with the trip counts and the band's median
    width (high over low): whether the widening outside the window holds the 80% it promises."""
    rows = []
    for (service, months), part in detail.groupby(["service", "months_from_window"]):
        rows.append(
            {
                "service": service,
                "months_from_window": int(months),
                "n": len(part),
                "coverage": float(part.covered.mean()),
                "median_width": float(np.median(part.high / part.low)) if "high" in part else float("nan"),
                "model_mae": float((part.model - part.actual).abs().mean()),
            }
        )
    return rows


def data_coverage(train: pd.DataFrame, holdout: pd.DataFrame) -> list[dict]:
    """Where each service's data is thin: rows, days and clock hours in the training window and the holdout."""
    rows = []
    for name, frame in (("training", train), ("holdout", holdout)):
        for service in SERVICES:
            part = frame[frame["service"] == service]
            at = pd.to_datetime(part["pickup_at"])
            rows.append(
                {
                    "split": name,
                    "service": service,
                    "trips": len(part),
                    "days": int(at.dt.date.nunique()),
                    "clock_hours": int(at.dt.floor("h").nunique()),
                    "first": str(at.min()) if len(part) else "",
                    "last": str(at.max()) if len(part) else "",
                }
            )
    return rows


def evaluate_holdout(model: FarePredictor, baseline: BaselineModel, holdout: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """Metrics of `model` (a FareModel) and `baseline` on `holdout`, plus the per-row detail behind them."""
    predicted = model.predict_frame(holdout)
    service = holdout["service"].to_numpy()
    detail = pd.DataFrame(
        {"service": service, "actual": holdout["rider_fare"].to_numpy(dtype=float)}, index=holdout.index
    )
    for s in SERVICES:
        detail[f"model_{s}"] = predicted[f"{s}_fare"].to_numpy()
        detail[f"baseline_{s}"] = baseline.predict(holdout, s)
    detail["model"] = np.where(service == "taxi", detail.model_taxi, detail.model_uber)
    detail["baseline"] = np.where(service == "taxi", detail.baseline_taxi, detail.baseline_uber)
    detail["p_uber_cheaper"] = predicted["p_uber_cheaper"].to_numpy()
    detail["support"] = support_bucket(predicted["route_log_trips"].to_numpy())
    detail["uber_stale_months"] = predicted["uber_stale_months"].to_numpy()
    if "uber_level_spread" in predicted:
        detail["uber_level_spread"] = predicted["uber_level_spread"].to_numpy()
    low = np.where(service == "taxi", predicted.taxi_low, predicted.uber_low)
    high = np.where(service == "taxi", predicted.taxi_high, predicted.uber_high)
    detail["covered"] = (detail.actual >= low) & (detail.actual <= high)
    detail["low"], detail["high"] = np.asarray(low, dtype=float), np.asarray(high, dtype=float)
    detail["months_from_window"] = _months_from_window(model, holdout)
    keys = _keys(holdout, baseline.table)
    detail["cell"], detail["hour"] = keys["cell"].to_numpy(), keys["hour"].to_numpy()
    detail["decision_cell"] = keys["decision_cell"].to_numpy()
    detail["borough_pair"] = _borough_pair(holdout, baseline.table)
    per_service: dict[str, dict[str, Any]] = {}
    for s in SERVICES:
        part = detail[detail.service == s]
        m = regression_metrics(part.actual.to_numpy(), part.model.to_numpy())
        b = regression_metrics(part.actual.to_numpy(), part.baseline.to_numpy())
        per_service[s] = {
            "model": m,
            "baseline": b,
            "interval_coverage": float(part.covered.mean()),
            "mae_improvement_pct": _improvement(m["mae"], b["mae"]),
        }
    model_mae = float(np.mean([per_service[s]["model"]["mae"] for s in SERVICES]))
    baseline_mae = float(np.mean([per_service[s]["baseline"]["mae"] for s in SERVICES]))
    metrics = {
        "services": per_service,
        "model_mae": model_mae,
        "baseline_mae": baseline_mae,
        "beats_baseline": bool(model_mae < baseline_mae),
        "mae_improvement_pct": _improvement(model_mae, baseline_mae),
        "cheaper_agreement": {**decision_metrics(detail), "per_trip": trip_calibration(detail)},
        "coverage_by_support": _coverage_by_support(detail),
        "coverage_by_months": coverage_by_months(detail),
        "mae_by_hour": _grouped_mae(detail, "hour"),
        "mae_by_borough_pair": _grouped_mae(detail, "borough_pair"),
    }
    return metrics, detail


def _improvement(model_mae: float, baseline_mae: float) -> float:
    """How much lower the model's MAE is than the baseline's, in percent of the baseline."""
    return float((baseline_mae - model_mae) / baseline_mae * 100) if baseline_mae > 0 else 0.0


def brier_at_scale(model: ScaledPredictor, holdout: pd.DataFrame, baseline: BaselineModel, scale: float) -> float:
    """The holdout's Brier score of the cheaper call had p_uber_cheaper used `scale` (1.0: uncalibrated)."""
    previous = model.p_scale
    model.p_scale = scale
    try:
        predicted = model.predict_frame(holdout)
    finally:
        model.p_scale = previous
    return float(decision_metrics(_decision_detail(holdout, predicted, baseline))["brier"])


def score(model: FarePredictor, holdout: pd.DataFrame, baseline: BaselineModel) -> tuple[float, float]:
    """The promotion scores: the mean over services of the holdout MAE (dollars), and the decision agreement on the
    holdout's cells with both services (NaN when there are none or the model says "about the same" everywhere)."""
    predicted = model.predict_frame(holdout)
    actual = holdout["rider_fare"].to_numpy(dtype=float)
    maes = []
    for s in SERVICES:
        mask = (holdout["service"] == s).to_numpy()
        maes.append(float(np.mean(np.abs(predicted[f"{s}_fare"].to_numpy()[mask] - actual[mask]))))
    return float(np.mean(maes)), float(decision_metrics(_decision_detail(holdout, predicted, baseline))["model"])
