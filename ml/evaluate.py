"""Judging on the time-based holdout: the baseline (median by zone pair x hour with fallbacks) and the metrics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from fares.ml import SERVICES
from fares.ml.features import BOROUGHS, ZoneTable, time_parts


class FarePredictor(Protocol):
    """What is judged: a FareModel, or anything else that prices a trips frame."""

    def predict_frame(self, trips: pd.DataFrame) -> pd.DataFrame:
        """Fares for `trips`, with the input's index."""
        ...


def _keys(frame: pd.DataFrame, table: ZoneTable) -> pd.DataFrame:
    """Integer lookup keys for the baseline levels: cell (pair x hour), pair, borough pair."""
    pu = frame["pickup_zone_id"].to_numpy(dtype=np.int64)
    do = frame["dropoff_zone_id"].to_numpy(dtype=np.int64)
    hour, _, _ = time_parts(frame["pickup_at"].to_numpy())
    pair = pu * table.size + do
    bpair = table.borough_code[pu].astype(np.int64) * len(BOROUGHS) + table.borough_code[do].astype(np.int64)
    return pd.DataFrame({"cell": pair * 24 + hour, "pair": pair, "bpair": bpair, "hour": hour}, index=frame.index)


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


def _cheaper_agreement(detail: pd.DataFrame) -> dict[str, float | int]:
    """Share of zone-pair x hour cells where the predicted cheaper service matches the holdout's actual medians."""
    actual = detail.pivot_table(index="cell", columns="service", values="actual", aggfunc="median")
    if not set(SERVICES) <= set(actual.columns):
        return {"cells": 0, "model": float("nan"), "baseline": float("nan")}
    actual = actual.dropna()
    cells = actual.index
    truth = actual["uber"] < actual["taxi"]
    result: dict[str, float | int] = {"cells": len(cells)}
    for who in ("model", "baseline"):
        med = detail.groupby("cell")[[f"{who}_taxi", f"{who}_uber"]].median().reindex(cells)
        said = med[f"{who}_uber"] < med[f"{who}_taxi"]
        result[who] = float((said == truth).mean()) if len(cells) else float("nan")
    return result


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
    low = np.where(service == "taxi", predicted.taxi_low, predicted.uber_low)
    high = np.where(service == "taxi", predicted.taxi_high, predicted.uber_high)
    detail["covered"] = (detail.actual >= low) & (detail.actual <= high)
    keys = _keys(holdout, baseline.table)
    detail["cell"], detail["hour"] = keys["cell"].to_numpy(), keys["hour"].to_numpy()
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
        "cheaper_agreement": _cheaper_agreement(detail),
        "mae_by_hour": _grouped_mae(detail, "hour"),
        "mae_by_borough_pair": _grouped_mae(detail, "borough_pair"),
    }
    return metrics, detail


def _improvement(model_mae: float, baseline_mae: float) -> float:
    """How much lower the model's MAE is than the baseline's, in percent of the baseline."""
    return float((baseline_mae - model_mae) / baseline_mae * 100) if baseline_mae > 0 else 0.0


def score(model: FarePredictor, holdout: pd.DataFrame) -> float:
    """The promotion score: the mean over services of the holdout MAE (dollars)."""
    predicted = model.predict_frame(holdout)
    actual = holdout["rider_fare"].to_numpy(dtype=float)
    maes = []
    for s in SERVICES:
        mask = (holdout["service"] == s).to_numpy()
        maes.append(float(np.mean(np.abs(predicted[f"{s}_fare"].to_numpy()[mask] - actual[mask]))))
    return float(np.mean(maes))
