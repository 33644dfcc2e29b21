"""The Python rate-card evaluator against the dbt unit test's hand-computed fares, on the real seed file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from fares.ml.tariff import ROUTE_FLAGS, Tariff, meter_fare, read_charge_zones, read_rate_card

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
    trips = _given(case, "int_trips_kept")
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


@pytest.mark.parametrize(
    ("zone_id", "name", "in_congestion", "in_relief"),
    [
        (50, "Clinton West", True, True),  # W 42nd-59th St: in the relief zone (a centroid cut left it out)
        (202, "Roosevelt Island", False, False),  # in the East River, reached from Queens (a centroid cut put it in)
        (140, "Lenox Hill East", True, False),  # north of 60th St (a centroid cut put it in the relief zone)
        (238, "Upper West Side North", True, False),  # south of W 96th St (a centroid cut left it out)
        (75, "East Harlem South", False, False),  # north of E 96th St
        (230, "Times Sq/Theatre District", True, True),
    ],
)
def test_the_zone_lists_place_the_boundary_zones(zone_id: int, name: str, in_congestion: bool, in_relief: bool) -> None:
    """The fallback lists (seed charge_zones) against the zones a latitude cut got wrong."""
    lists = read_charge_zones()
    assert (zone_id in lists["congestion_surcharge"], zone_id in lists["congestion_relief_zone"]) == (
        in_congestion,
        in_relief,
    ), name


def test_the_relief_zone_lies_inside_the_congestion_zone() -> None:
    lists = read_charge_zones()
    assert lists["congestion_relief_zone"] < lists["congestion_surcharge"]
    assert (len(lists["congestion_surcharge"]), len(lists["congestion_relief_zone"])) == (49, 38)


def test_the_surcharges_are_charged_by_the_pairs_incidence() -> None:
    """East Harlem North -> Downtown Brooklyn: neither zone is listed, but 95% of the pair's trips paid the $2.50
    surcharge, so the meter expects $2.375 of it; on 2025-02-04 a pair whose trips paid the $0.75 relief-zone fee
    in 40% of cases expects $0.30. To Newark nothing, whatever the share. 10 miles in 30 minutes: 50 units."""
    tariff = Tariff(read_rate_card())
    through = {**_flags(), "congestion_incidence": np.array([0.95]), "relief_zone_incidence": np.array([0.4])}
    to_newark = {**_flags("is_newark_dropoff"), "congestion_incidence": np.array([1.0])}
    miles, minutes = np.array([10.0]), np.array([30.0])
    at_2020, at_2025 = np.array([np.datetime64("2020-04-15T10:00")]), np.array([np.datetime64("2025-02-04T10:00")])
    assert meter_fare(tariff, at_2020, miles, minutes, through)[0] == pytest.approx(2.5 + 0.5 * 50 + 0.5 + 0.3 + 2.375)
    assert meter_fare(tariff, at_2025, miles, minutes, through)[0] == pytest.approx(
        3.0 + 0.7 * 50 + 0.5 + 1.0 + 0.95 * 2.5 + 0.4 * 0.75
    )
    assert meter_fare(tariff, at_2020, miles, minutes, to_newark)[0] == pytest.approx(2.5 + 0.5 * 50 + 17.5 + 0.3)
