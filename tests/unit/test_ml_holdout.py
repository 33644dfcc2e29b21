"""The holdout that grows until it holds its minimum, training typicals without the trip itself, and the training
sample's budget shared among months (no database)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fares.ml import TrainingDataError
from fares.ml.features import build_pair_stats, build_route_table, leave_one_out
from fares.ml.holdout import plan_holdout
from fares.ml.simulate import build_lookups, make_training_frame, make_zones


def _evening(hours: dict[str, list[tuple[str, int, int]]]) -> pd.DataFrame:
    """Trips as {pickup time: [(service, pickup zone, dropoff zone), ...]}."""
    rows = [
        {"service": s, "pickup_at": pd.Timestamp(at), "pickup_zone_id": pu, "dropoff_zone_id": do}
        for at, trips in hours.items()
        for s, pu, do in trips
    ]
    return pd.DataFrame(rows)


EVENING = _evening(
    {
        "2020-04-30 12:10": [("taxi", 161, 230)],
        "2020-04-30 17:10": [("taxi", 161, 230), ("uber", 161, 230)],
        "2020-04-30 18:10": [("taxi", 161, 230), ("uber", 161, 230)],
        "2020-04-30 19:10": [("taxi", 161, 230), ("uber", 236, 230)],
        "2020-04-30 20:10": [("taxi", 161, 230), ("uber", 161, 230)],
        "2020-04-30 21:10": [("taxi", 161, 230), ("uber", 236, 230)],
        "2020-04-30 22:05": [("uber", 236, 230)],
    }
)


def test_the_holdout_grows_backwards_until_it_holds_its_minimum() -> None:
    """From 21:00 one taxi trip (2 asked); from 20:00 two of each and the cell 161 -> 230 at 20h with both."""
    plan = plan_holdout(EVENING, fraction=0.2, min_trips=2, min_cells=1, max_share=0.5)
    assert str(plan.start) == "2020-04-30 20:00:00"
    assert (plan.shared_hours, plan.holdout_hours) == (5, 2)
    assert plan.trips == {"taxi": 2, "uber": 3} and plan.cells == 1 and plan.has_minimum
    assert "at least the 2 trips per service" in plan.describe(2, 1)


def test_more_cells_asked_grow_it_further() -> None:
    """Two cells with both services first exist from 18:00 (161 -> 230 at 18h and at 20h)."""
    plan = plan_holdout(EVENING, fraction=0.2, min_trips=1, min_cells=2, max_share=0.9)
    assert str(plan.start) == "2020-04-30 18:00:00" and plan.cells == 2 and plan.has_minimum


def test_the_share_cap_stops_it_and_it_says_it_holds_too_few() -> None:
    """Four trips of each asked, but from 18:00 it would take 5 of 6 Uber trips (cap 80%): it stops at 19:00."""
    plan = plan_holdout(EVENING, fraction=0.2, min_trips=4, min_cells=1, max_share=0.8)
    assert str(plan.start) == "2020-04-30 19:00:00" and plan.trips == {"taxi": 3, "uber": 4}
    assert not plan.has_minimum
    assert "FEWER than the 4 trips per service" in plan.describe(4, 1)


def test_no_shared_hour_is_an_error_that_says_so() -> None:
    with pytest.raises(TrainingDataError, match="no clock hour holds trips of both"):
        plan_holdout(EVENING[EVENING.service == "taxi"])


@pytest.fixture(scope="module")
def window() -> tuple[pd.DataFrame, pd.DataFrame]:
    zones = make_zones()
    return make_training_frame(zones, n_rows=6_000, seed=3), zones


def _stats_without(frame: pd.DataFrame, zones: pd.DataFrame, drop: int) -> tuple[float, float, float]:
    """The in-sample typical of trip `drop`'s cell had the trip never been in the window."""
    kept = frame.drop(index=drop)
    lookups = build_lookups(kept, zones)
    size = int(zones.zone_id.max()) + 1
    pairs = build_pair_stats(lookups.typicals, build_route_table(lookups.zone_pairs, size), size)
    row = frame.loc[drop]
    at = (int(row.pickup_zone_id), int(row.dropoff_zone_id), int(pd.Timestamp(row.pickup_at).hour))
    return float(pairs.miles[at]), float(pairs.minutes[at]), float(pairs.log_count[at])


@pytest.mark.parametrize("cell_trips", [1, 2])
def test_leave_one_out_typicals_are_the_window_without_the_trip(
    window: tuple[pd.DataFrame, pd.DataFrame], cell_trips: int
) -> None:
    """A training trip's typical miles, minutes and count are those of the window without it (cells of one or two
    trips, where its own answer weighs most), and differ from the in-sample ones."""
    frame, zones = window
    hour = pd.to_datetime(frame.pickup_at).dt.hour
    cell_size = frame.groupby([frame.pickup_zone_id, frame.dropoff_zone_id, hour]).trip_id.transform("size")
    drop = int(np.flatnonzero((cell_size == cell_trips).to_numpy())[0])
    lookups = build_lookups(frame, zones)
    size = int(zones.zone_id.max()) + 1
    routes = build_route_table(lookups.zone_pairs, size)
    row = frame.iloc[[drop]]
    trip = (row.pickup_zone_id.to_numpy(), row.dropoff_zone_id.to_numpy(), hour.iloc[[drop]].to_numpy())
    miles, minutes, count = leave_one_out(
        lookups.typicals, routes, size, trip, (row.trip_miles.to_numpy(), row.duration_minutes.to_numpy())
    )
    expected = _stats_without(frame, zones, frame.index[drop])
    # the distance fallback's window-wide rates move by one trip in 6,000: a relative 1e-3
    np.testing.assert_allclose([miles[0], minutes[0], count[0]], expected, rtol=1e-3)
    in_sample = build_pair_stats(lookups.typicals, routes, size)
    assert count[0] == pytest.approx(np.log1p(cell_trips - 1))
    assert miles[0] != pytest.approx(float(in_sample.miles[trip[0][0], trip[1][0], trip[2][0]]), rel=1e-3)


def test_leave_one_out_leaves_trips_outside_the_window_alone(window: tuple[pd.DataFrame, pd.DataFrame]) -> None:
    """A trip whose cell is not in the typicals (not a training-window trip) keeps the in-sample values."""
    frame, zones = window
    lookups = build_lookups(frame, zones)
    size = int(zones.zone_id.max()) + 1
    routes = build_route_table(lookups.zone_pairs, size)
    typ = lookups.typicals
    seen = set(zip(typ.pickup_zone_id, typ.dropoff_zone_id, typ.pickup_hour, strict=True))
    pu, do, h = next(
        (p, d, hh) for p in range(1, 50) for d in range(1, 50) for hh in range(24) if (p, d, hh) not in seen
    )
    trip = (np.array([pu]), np.array([do]), np.array([h]))
    miles, minutes, count = leave_one_out(lookups.typicals, routes, size, trip, (np.array([9.0]), np.array([30.0])))
    in_sample = build_pair_stats(lookups.typicals, routes, size)
    assert (miles[0], minutes[0], count[0]) == (in_sample.miles[pu, do, h], in_sample.minutes[pu, do, h], 0.0)


def test_the_training_budget_is_shared_evenly_among_a_services_months() -> None:
    from fares.ml.sample import month_quotas

    # two large months share the budget; a third month smaller than its share gives the rest to the others
    assert month_quotas({"2024-01": 10**7, "2024-02": 10**7}, 300_000) == {"2024-01": 150_000, "2024-02": 150_000}
    quotas = month_quotas({"2024-01": 20_000, "2024-02": 10**7, "2024-03": 10**7}, 300_000)
    assert quotas == {"2024-01": 20_000, "2024-02": 140_000, "2024-03": 140_000}
    # the remainder of an uneven split goes to the newest months, one trip each
    assert month_quotas({"2024-01": 100, "2024-02": 100, "2024-03": 100}, 200) == {
        "2024-01": 66,
        "2024-02": 67,
        "2024-03": 67,
    }
    # one month takes the whole budget, as many months together do: the sample's size does not grow with history
    assert sum(month_quotas({"2024-01": 10**7}, 300_000).values()) == 300_000
    assert sum(month_quotas({f"2023-{m:02d}": 10**7 for m in range(1, 13)}, 300_000).values()) == 300_000
    # fewer trips than the budget: every trip
    assert month_quotas({"2024-01": 10, "2024-02": 20}, 300_000) == {"2024-01": 10, "2024-02": 20}
