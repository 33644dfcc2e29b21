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
from fares.ml.features import PairStats, ZoneTable, build_features, check_zone_ids

log = logging.getLogger(__name__)

MODEL_FILE = "model.pkl"
CURRENT_FILE = "CURRENT"
OUTPUT_COLUMNS: tuple[str, ...] = (
    "taxi_fare",
    "taxi_low",
    "taxi_high",
    "uber_fare",
    "uber_low",
    "uber_high",
    "p_uber_cheaper",
)
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


@dataclass
class ServiceModel:
    """One service's log-fare regressor and its residual quantiles by predicted-fare bin."""

    regressor: Any
    bin_edges: np.ndarray
    q_low: np.ndarray
    q_high: np.ndarray

    def spread(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Low/high log offsets for raw (log) predictions."""
        b = np.searchsorted(self.bin_edges, raw)
        return self.q_low[b], self.q_high[b]


@dataclass
class FareModel:
    """Taxi and Uber fare estimates with a low/high band and the chance that Uber is cheaper."""

    services: dict[str, ServiceModel]
    zone_table: ZoneTable
    pairs: PairStats
    zones: pd.DataFrame
    trained_from: str
    trained_to: str
    version: str = ""
    metrics: dict = field(default_factory=dict)
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

    def predict_frame(self, trips: pd.DataFrame) -> pd.DataFrame:
        """Fares for `trips` (pickup_at, pickup_zone_id, dropoff_zone_id); the result has the input's index."""
        pickup = trips["pickup_zone_id"].to_numpy(dtype=np.int64)
        dropoff = trips["dropoff_zone_id"].to_numpy(dtype=np.int64)
        check_zone_ids(self.zone_table, pickup, dropoff)
        at = _naive_new_york(trips["pickup_at"])
        raw = self._raw(build_features(at, pickup, dropoff, self.zone_table, self.pairs))
        out = np.empty((len(trips), len(OUTPUT_COLUMNS)))
        sd = []
        for i, service in enumerate(SERVICES):
            lo, hi = self.services[service].spread(raw[:, i])
            out[:, 3 * i] = np.exp(raw[:, i])
            out[:, 3 * i + 1] = np.exp(raw[:, i] + lo)
            out[:, 3 * i + 2] = np.exp(raw[:, i] + hi)
            sd.append((out[:, 3 * i + 2] - out[:, 3 * i + 1]) / (2 * Z_80))
        from scipy.special import ndtr

        out[:, 6] = ndtr((out[:, 0] - out[:, 3]) / np.sqrt(sd[0] ** 2 + sd[1] ** 2 + 1e-6))
        return pd.DataFrame(out, index=trips.index, columns=list(OUTPUT_COLUMNS))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_forest"] = None  # rebuilt lazily; keeps the file small
        return state


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
