"""How far the Uber price level moves past the data (fares.ml.drift): measured from the monthly levels and the seed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fares.ml.drift import DEFAULT_MONTHLY_DRIFT, LAGS, measure_level_drift, read_price_moves


def _months(*names: str) -> np.ndarray:
    return np.array(names, dtype="datetime64[M]")


def test_noise_is_the_spread_of_one_month_steps_and_trend_what_long_moves_add() -> None:
    """Levels 1.00, 1.02, 1.00, 1.02 (one-month log steps +-0.0198: noise their standard deviation) and a published
    move of +50% over 36 months: the trend is sqrt(log(1.5)^2 - noise^2 36) / 36, and the spread at k months is
    sqrt(noise^2 k + trend^2 k^2)."""
    levels = np.array([1.0, 1.02, 1.0, 1.02])
    published = pd.DataFrame(
        {
            "measure": ["fare", "driver_pay_per_mile"],
            "from_month": ["2020-01-01", "2020-01-01"],
            "to_month": ["2023-01-01", "2023-01-01"],
            "ratio": [1.5, 1.13],
        }
    )
    drift = measure_level_drift(_months("2020-01", "2020-02", "2020-03", "2020-04"), levels, published)
    steps = np.diff(np.log(levels))
    assert drift.noise == pytest.approx(np.std(steps))
    assert drift.trend == pytest.approx(np.sqrt(np.log(1.5) ** 2 - drift.noise**2 * 36) / 36)
    k = np.array([0, 1, 12, 36])
    assert drift.spread(k) == pytest.approx(np.sqrt(drift.noise**2 * k + drift.trend**2 * k**2))
    described = drift.describe()
    assert list(described["spread_at"]) == [str(lag) for lag in LAGS]
    data_rows = [m for m in described["moves"] if m["source"] == "data"]
    assert [(m["lag"], m["pairs"]) for m in data_rows] == [(1, 3), (3, 1)]
    assert [m["move_pct"] for m in described["moves"] if m["source"] == "published"] == pytest.approx([50.0])


def test_one_month_of_levels_falls_back_to_the_default_noise_and_the_published_trend() -> None:
    """The shared samples hold one Uber month: the noise is DEFAULT_MONTHLY_DRIFT, the trend comes from the seed, so a
    quote three years on is as uncertain as the published three-year moves."""
    drift = measure_level_drift(_months("2020-04"), np.array([2.1]), read_price_moves())
    assert drift.noise == DEFAULT_MONTHLY_DRIFT
    assert drift.trend > 0.01  # about half in three years, 92% in three and a half
    assert drift.spread(np.array([36]))[0] > np.log(1.5) > 0.03 * 6
    without = measure_level_drift(_months("2020-04"), np.array([2.1]), None)
    assert without.trend == 0.0 and without.spread(np.array([36]))[0] == pytest.approx(0.03 * 6)


def test_the_seed_names_a_source_for_every_move() -> None:
    """Every published move has a source; the driver pay rows are there as context (they rose about 13% in four
    years) and are not fare moves."""
    from fares.ml.drift import PRICE_MOVES_FILE

    seed = pd.read_csv(PRICE_MOVES_FILE)
    assert seed["source"].notna().all() and (seed["ratio"] > 0).all()
    pay = seed[(seed["measure"] == "driver_pay_per_mile") & (seed["from_month"] == "2019-02-01")]
    assert pay["ratio"].iloc[0] == pytest.approx(1.234 / 1.088, abs=1e-4)
