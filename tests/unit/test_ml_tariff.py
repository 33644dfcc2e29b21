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


def _flags(*names: str) -> dict[str, np.ndarray]:
    return {name: np.array([name in names]) for name in ROUTE_FLAGS}


def test_a_newark_trip_carries_no_congestion_surcharge() -> None:
    """Midtown -> Newark starts in the congestion zone but ends outside New York State: meter, Newark surcharge and
    improvement surcharge only (no MTA tax, no $2.50 congestion surcharge). 10 miles, 30 minutes: 50 units."""
    tariff = Tariff(read_rate_card())
    at = np.array([np.datetime64("2020-04-15T10:00")])
    to_newark = meter_fare(
        tariff, at, np.array([10.0]), np.array([30.0]), _flags("is_newark_dropoff", "is_congestion_trip")
    )
    in_the_zone = meter_fare(tariff, at, np.array([10.0]), np.array([30.0]), _flags("is_congestion_trip"))
    assert to_newark[0] == pytest.approx(2.5 + 0.5 * 50 + 17.5 + 0.3)
    assert in_the_zone[0] == pytest.approx(2.5 + 0.5 * 50 + 0.5 + 0.3 + 2.5)


@pytest.mark.parametrize(
    ("at", "names", "fare"),
    [
        # the 2004-05-03 card: $2.50 + $0.40 a unit; 3 miles in 12 minutes is 15 units
        ("2004-05-03T10:00", (), 2.5 + 0.4 * 15),
        ("2009-10-30T10:00", (), 2.5 + 0.4 * 15),  # a Friday before the MTA tax
        ("2009-11-02T10:00", (), 2.5 + 0.4 * 15 + 0.5),  # the Monday after it began
        ("2011-03-01T17:30", (), 2.5 + 0.4 * 15 + 1.0 + 0.5),  # weekday rush hour
        ("2011-03-01T22:00", (), 2.5 + 0.4 * 15 + 0.5 + 0.5),  # night
        ("2011-03-01T17:30", ("is_jfk_manhattan",), 45.0 + 0.5),  # JFK flat fare, no rush-hour surcharge yet
        ("2011-03-01T10:00", ("is_newark_dropoff",), 2.5 + 0.4 * 15 + 15.0),  # Newark: $15, no MTA tax
        ("2012-09-04T10:00", (), 2.5 + 0.5 * 15 + 0.5),  # the 2012 card from its first day
        # JFK flat fare at rush hour either side of 2015-07-16, the seed's first day of the $4.50 surcharge
        ("2012-09-04T17:30", ("is_jfk_manhattan",), 52.0 + 0.5),  # a Tuesday: the 2012 card had no JFK surcharge
        ("2015-07-15T17:30", ("is_jfk_manhattan",), 52.0 + 0.5 + 0.3),  # a Wednesday, the day before
        ("2015-07-16T17:30", ("is_jfk_manhattan",), 52.0 + 4.5 + 0.5 + 0.3),  # a Thursday, its first day
        ("2015-07-16T10:00", ("is_jfk_manhattan",), 52.0 + 0.5 + 0.3),  # the same day outside 4-8 pm
    ],
)
def test_each_card_from_2004_gives_the_hand_computed_fare(at: str, names: tuple[str, ...], fare: float) -> None:
    got = meter_fare(
        Tariff(read_rate_card()), np.array([np.datetime64(at)]), np.array([3.0]), np.array([12.0]), _flags(*names)
    )
    assert got[0] == pytest.approx(fare)


def test_the_card_starts_on_2004_05_03() -> None:
    """The earliest day the seed prices (the API refuses earlier pickups with this date)."""
    tariff = Tariff(read_rate_card())
    assert str(tariff.bounds[0]) == "2004-05-03"
    assert np.isnat(tariff.period_start(np.array([np.datetime64("2004-05-02")]))[0])
