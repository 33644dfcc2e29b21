"""How far prices move past the data: the Uber price level's drift over k months, measured from the monthly levels and
the published figures (the dbt seed `hvfhv_price_moves`), as the spread a stale Uber quote's band must cover."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from fares.config.warehouse import DBT_PROJECT_DIR

PRICE_MOVES_FILE = DBT_PROJECT_DIR / "seeds" / "hvfhv_price_moves.csv"
PRICE_MOVE_COLUMNS: tuple[str, ...] = ("measure", "from_month", "to_month", "ratio")  # all but `source`
FARE_MEASURE = "fare"  # the seed's rows about what riders pay; the others (driver pay floors) are context only
LAGS: tuple[int, ...] = (1, 3, 12, 36)  # months over which the report shows how far levels moved
DEFAULT_MONTHLY_DRIFT = 0.03  # log change of a level per month when fewer than three months say otherwise
MIN_MONTHLY_DRIFT = 0.005


def read_price_moves(path: Path = PRICE_MOVES_FILE) -> pd.DataFrame:
    """The published price moves seed as a frame (measure, from_month, to_month, ratio): for DB-free fits."""
    return pd.read_csv(path, usecols=list(PRICE_MOVE_COLUMNS), dtype={"from_month": str, "to_month": str})


def _month_numbers(months: pd.Series) -> np.ndarray:
    parsed = pd.to_datetime(months.astype(str).str[:7], format="%Y-%m")
    return parsed.to_numpy().astype("datetime64[M]").astype(np.int64)


def level_moves(months: np.ndarray, levels: np.ndarray) -> pd.DataFrame:
    """Every pair of known monthly levels as (lag in months, log move): how far the data's own levels moved."""
    month = np.asarray(months).astype("datetime64[M]").astype(np.int64)
    log_level = np.log(np.asarray(levels, dtype=float))
    i, j = np.triu_indices(len(month), k=1)
    return pd.DataFrame({"lag": np.abs(month[j] - month[i]), "move": log_level[j] - log_level[i], "source": "data"})


def published_moves(frame: pd.DataFrame | None) -> pd.DataFrame:
    """The seed's fare rows as (lag in months, log move, from, to)."""
    if frame is None or frame.empty:
        return pd.DataFrame(columns=["lag", "move", "source", "from_month", "to_month"])
    fares = frame[frame["measure"] == FARE_MEASURE]
    lag = _month_numbers(fares["to_month"]) - _month_numbers(fares["from_month"])
    return pd.DataFrame(
        {
            "lag": lag,
            "move": np.log(fares["ratio"].to_numpy(dtype=float)),
            "source": "published",
            "from_month": fares["from_month"].astype(str).to_numpy(),
            "to_month": fares["to_month"].astype(str).to_numpy(),
        }
    )


@dataclass
class LevelDrift:
    """The spread of log(level k months on / level now): sqrt(noise^2 k + trend^2 k^2), a random walk (month-to-month
    noise, from the data's consecutive levels) plus a trend of unknown sign (from every move a year or more long, the
    published ones included). Symmetric: the band covers a move either way; the quote's centre stays at the newest
    level, since no dated index explains where the level goes next."""

    noise: float = DEFAULT_MONTHLY_DRIFT
    trend: float = 0.0
    moves: list[dict] = field(default_factory=list)  # what it was measured on, for the report

    def spread(self, months: np.ndarray) -> np.ndarray:
        """The standard deviation of the log level move over `months` months (0 for 0)."""
        k = np.maximum(np.asarray(months, dtype=float), 0.0)
        return np.sqrt(self.noise**2 * k + self.trend**2 * k**2)

    def describe(self) -> dict:
        """The fitted figures, the spread at LAGS, and the moves behind them (metrics.json, the report, the bench)."""
        return {
            "monthly_noise": self.noise,
            "monthly_trend": self.trend,
            "spread_at": {str(k): float(self.spread(np.array([k]))[0]) for k in LAGS},
            "moves": self.moves,
        }


def _moves_by_lag(data: pd.DataFrame) -> list[dict]:
    """The root mean square of the data's level moves at each of LAGS, with how many month pairs stand behind it."""
    rows = []
    for lag in LAGS:
        at = data[data["lag"] == lag]["move"].to_numpy(dtype=float)
        if len(at):
            rows.append({"source": "data", "lag": lag, "pairs": len(at), "rms_move": float(np.sqrt(np.mean(at**2)))})
    return rows


def measure_level_drift(months: np.ndarray, levels: np.ndarray, published: pd.DataFrame | None) -> LevelDrift:
    """Fit LevelDrift on the data's monthly levels and the published moves.

    The noise is the standard deviation of the one-month steps when the data holds at least three months (else
    DEFAULT_MONTHLY_DRIFT). The trend is the root mean square, over every move of 12 months or more (the data's pairs
    and the published figures), of what the noise does not explain: sqrt(max(move^2 - noise^2 lag, 0)) / lag.
    """
    data = level_moves(months, levels) if len(levels) >= 2 else level_moves(np.array([]), np.array([]))
    steps = data[data["lag"] == 1]["move"].to_numpy(dtype=float)
    noise = float(np.std(steps)) if len(levels) >= 3 and len(steps) >= 2 else DEFAULT_MONTHLY_DRIFT
    noise = max(noise, MIN_MONTHLY_DRIFT)
    seed = published_moves(published)
    long = pd.concat([data[data["lag"] >= 12][["lag", "move"]], seed[["lag", "move"]]], ignore_index=True)
    lag, move = long["lag"].to_numpy(dtype=float), long["move"].to_numpy(dtype=float)
    excess = np.maximum(move**2 - noise**2 * lag, 0.0) / np.maximum(lag, 1.0) ** 2
    trend = float(np.sqrt(np.mean(excess))) if len(excess) else 0.0
    moves = _moves_by_lag(data) + [
        {
            "source": "published",
            "lag": int(r.lag),
            "from_month": r.from_month,
            "to_month": r.to_month,
            "move_pct": float(np.expm1(r.move) * 100),
        }
        for r in seed.itertuples()
    ]
    return LevelDrift(noise=noise, trend=trend, moves=moves)
