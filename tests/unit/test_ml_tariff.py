"""The Python rate-card evaluator against the dbt unit test's hand-computed fares, on the real seed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fares.ml.tariff import ROUTE_FLAGS, Tariff, meter_fare, read_rate_card

UNIT_TESTS = Path(__file__).resolve().parents[2] / "dbt_project" / "models" / "marts" / "_marts__unit_tests.yml"
CASE = "taxi_meter_fare_follows_each_tariff_period"


def _case() -> dict:
    doc = yaml.safe_load(UNIT_TESTS.read_text(encoding="utf-8"))
    return next(t for t in doc["unit_tests"] if t["name"] == CASE)


def _given(case: dict, ref: str) -> pd.DataFrame:
    return pd.DataFrame(next(g["rows"] for g in case["given"] if g["input"] == f"ref('{ref}')"))


def test_python_meter_matches_the_dbt_unit_test_fares_on_the_real_seed() -> None:
    """Every tariff period's hand-computed fare, with the tariff looked up from the seed file (not the test's mock)."""
    case = _case()
    trips = _given(case, "fct_trips")
    pairs = _given(case, "dim_zone_pairs").set_index(["pickup_zone_id", "dropoff_zone_id"])
    route = pairs.loc[list(zip(trips.pickup_zone_id, trips.dropoff_zone_id, strict=True))]
    flags = {name: route[name].to_numpy(dtype=bool) for name in ROUTE_FLAGS}
    got = meter_fare(
        Tariff(read_rate_card()),
        pd.to_datetime(trips.pickup_at).to_numpy(),
        trips.trip_miles.to_numpy(dtype=float),
        trips.duration_minutes.to_numpy(dtype=float),
        flags,
    )
    expected = {row["trip_id"]: float(row["meter_fare"]) for row in case["expect"]["rows"]}
    assert dict(zip(trips.trip_id, np.round(got, 2).tolist(), strict=True)) == expected


def test_dbt_unit_test_periods_are_the_seed_pivoted() -> None:
    """The tariff rows the dbt unit test mocks are exactly what the seed says for each period's first day."""
    tariff = Tariff(read_rate_card())
    periods = _given(_case(), "taxi_tariff_periods")
    days = pd.to_datetime(periods.valid_from).to_numpy(dtype="datetime64[D]")
    for charge in tariff.card["charge"].unique():
        np.testing.assert_allclose(tariff.charge(charge, days), periods[charge].to_numpy(dtype=float), err_msg=charge)
    assert len(periods) == len(np.unique(np.concatenate([days])))


@pytest.mark.parametrize(
    ("day", "start"),
    [
        ("2020-04-30", "2019-02-02"),
        ("2022-12-18", "2022-10-01"),
        ("2022-12-19", "2022-12-19"),
        ("2027-01-01", "2026-03-15"),
    ],
)
def test_period_start_names_the_tariff_in_force(day: str, start: str) -> None:
    tariff = Tariff(read_rate_card())
    assert str(tariff.period_start(np.array([np.datetime64(day)]))[0]) == start


def test_jfk_flat_fare_moves_with_the_2022_tariff() -> None:
    """JFK -> Midtown on a weekday at 17:30: $52 + $4.50 + fees in 2021, $70 + $5 + fees in 2024."""
    flags = {
        name: np.array([name in ("is_jfk_manhattan", "is_airport_fee_pickup", "is_congestion_trip")])
        for name in ROUTE_FLAGS
    }
    tariff = Tariff(read_rate_card())
    fares = [
        meter_fare(tariff, np.array([np.datetime64(at)]), np.array([17.0]), np.array([50.0]), flags)[0]
        for at in ("2021-06-09T17:30", "2024-05-15T17:30")
    ]
    assert fares == pytest.approx([52 + 4.5 + 0.5 + 0.3 + 2.5 + 1.25, 70 + 5 + 0.5 + 1.0 + 2.5 + 1.75])
