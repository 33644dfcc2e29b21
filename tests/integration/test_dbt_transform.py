"""dbt build on real PostgreSQL: the TLC samples and the synthetic mirror, checked as an analyst reads the marts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fares.config.settings import Settings
from fares.engines.transform import run_dbt
from tests.conftest import Built

pytestmark = pytest.mark.integration

# The ARCHITECTURE.md contract of the training mart: column -> PostgreSQL type.
TRAINING_CONTRACT = {
    "trip_id": "text",
    "service": "text",
    "pickup_at": "timestamp without time zone",
    "source_month": "text",
    "pickup_zone_id": "integer",
    "dropoff_zone_id": "integer",
    "pickup_borough": "text",
    "dropoff_borough": "text",
    "pickup_hour": "integer",
    "pickup_dow": "integer",
    "is_weekend": "boolean",
    "pickup_month": "integer",
    "is_airport_pickup": "boolean",
    "is_airport_dropoff": "boolean",
    "is_same_zone": "boolean",
    "centroid_distance_miles": "double precision",
    "is_jfk_manhattan": "boolean",
    "is_newark_dropoff": "boolean",
    "is_laguardia_trip": "boolean",
    "trip_miles": "double precision",
    "duration_minutes": "double precision",
    "meter_fare": "double precision",
    "rider_fare": "double precision",
}
ZONES_CONTRACT = {
    "zone_id": "integer",
    "borough": "text",
    "zone_name": "text",
    "service_zone": "text",
    "centroid_lat": "double precision",
    "centroid_lon": "double precision",
    "geometry_wkt": "text",
    "is_airport": "boolean",
}

# The seeds' types (ml/ reads them): dbt_project.yml names decimal and date, which both adapters accept; the text
# columns are inferred, as each adapter's text type.
SEED_TYPES = {
    "taxi_rate_card": {
        "charge": "text",
        "amount_usd": "numeric(8,2)",
        "effective_from": "date",
        "effective_to": "date",
        "source": "text",
    },
    "charge_zones": {
        "charge_zone": "text",
        "zone_id": "integer",
        "zone_name": "text",
        "source": "text",
        "note": "text",
    },
    "hvfhv_charges": {
        "charge": "text",
        "amount": "numeric(10,5)",
        "unit": "text",
        "effective_from": "date",
        "effective_to": "date",
        "source": "text",
    },
}


def _columns(built: Built, schema: str, table: str) -> dict[str, str]:
    rows = built.rows(
        "select column_name, data_type from information_schema.columns where table_schema = %s and table_name = %s",
        (schema, table),
    )
    return dict(rows)


def _counts_vs_raw(built: Built) -> list[tuple[Any, ...]]:
    """Per month and service: raw rows, kept rows (cleaned table), and the sum of the rule counts."""
    return built.rows("""
        with raw_rows as (
            select source_month, 'taxi' as service, count(*) as n from raw.yellow_trips group by 1
            union all
            select source_month, case hvfhs_license_num when 'HV0003' then 'uber' when 'HV0005' then 'lyft'
                when 'HV0004' then 'via' when 'HV0002' then 'juno' else 'unknown' end, count(*)
            from raw.fhvhv_trips group by 1, 2),
        cleaned as (select source_month, service, count(*) as n from intermediate.int_trips_cleaned group by 1, 2),
        removed as (select source_month, service, sum(trips_removed)::bigint as n
                    from marts.cleaning_rule_counts group by 1, 2)
        select raw_rows.source_month, raw_rows.service, raw_rows.n, coalesce(cleaned.n, 0), removed.n
        from raw_rows
        left join cleaned using (source_month, service)
        left join removed using (source_month, service)
        order by 1, 2""")


def test_every_clean_month_reaches_the_marts_and_april_alone_is_aligned(tlc_built: Built) -> None:
    """Yellow covers January to April, FHVHV only April: April alone is comparable, yet every month's cleaned trips
    reach fct_trips and the training mart, so the taxi model learns from January to April."""
    months = tlc_built.rows("select source_month, is_aligned from intermediate.int_months_aligned order by 1")
    assert months == [("2020-01", False), ("2020-02", False), ("2020-03", False), ("2020-04", True)]
    # every cleaned trip with two known zones is kept, whatever its month
    per_month = tlc_built.rows("select source_month, count(*) from marts.fct_trips group by 1 order by 1")
    assert per_month == tlc_built.rows(
        "select source_month, count(*) from intermediate.int_trips_cleaned c"
        " where exists (select 1 from marts.dim_zones z where z.zone_id = c.pickup_zone_id)"
        " and exists (select 1 from marts.dim_zones z where z.zone_id = c.dropoff_zone_id) group by 1 order by 1"
    )
    training = dict(
        tlc_built.rows("select source_month || ' ' || service, count(*) from marts.ml_fare_training group by 1")
    )
    assert sorted(training) == ["2020-01 taxi", "2020-02 taxi", "2020-03 taxi", "2020-04 taxi", "2020-04 uber"]
    # ~10k yellow rows per month and 7,002 Uber rows before cleaning; 803 yellow rows of April 2020 carry no rate code
    assert all(n > 8_000 for key, n in training.items() if key.endswith("taxi")) and training["2020-04 uber"] > 6_500


def test_uber_coverage_in_april_is_a_single_evening(tlc_built: Built) -> None:
    """The coverage model shows Uber's April as one evening, 19:00-22:00 on the 30th, against a whole taxi month."""
    coverage = {
        row[0]: row[1:]
        for row in tlc_built.rows(
            "select service, is_aligned, days_covered, hours_covered, first_pickup_at::text, last_pickup_at::text "
            "from marts.service_month_coverage where source_month = '2020-04'"
        )
    }
    aligned, days, hours, first, last = coverage["uber"]
    assert (aligned, days, hours) == (True, 1, 3)
    assert first.startswith("2020-04-30 19:") and last.startswith("2020-04-30 21:")
    assert coverage["taxi"][1] == 30  # yellow has pickups on every day of April


def test_rule_counts_add_up_to_raw_minus_cleaned(tlc_built: Built) -> None:
    """For every month and service, the trips the rules removed are exactly raw minus cleaned."""
    rows = _counts_vs_raw(tlc_built)
    assert {(month, service) for month, service, *_ in rows} >= {("2020-01", "taxi"), ("2020-04", "uber")}
    for month, service, raw, kept, removed in rows:
        assert removed == raw - kept, (month, service, raw, kept, removed)
        # real samples lose a few percent, and taxis about 8% more: the rows without a rate code (2020)
        assert removed < raw * (0.2 if service == "taxi" else 0.1), (month, service, removed)
        assert removed > 0 or service == "via", (month, service)


def test_real_data_problems_are_caught_by_their_rules(tlc_built: Built) -> None:
    """The known quirks of the real files are removed by the named rule, and none survive into fct_trips."""
    removed = dict(
        tlc_built.rows("select rule_name, sum(trips_removed)::int from marts.cleaning_rule_counts group by 1")
    )
    assert removed["pickup_outside_file_month"] >= 1  # the 2020-03 file holds a January pickup
    assert (
        removed["unknown_zone"] > 100 and removed["fare_not_positive"] > 50 and removed["distance_not_positive"] > 100
    )
    assert removed["rate_code_not_metered"] > 500 and removed["payment_disputed_or_free"] > 50
    survivors = tlc_built.rows("""
        select count(*) from marts.fct_trips
        where pickup_zone_id in (264, 265) or dropoff_zone_id in (264, 265) or rider_fare <= 0 or trip_miles <= 0
           or duration_minutes < 1 or duration_minutes > 180 or trip_miles > 100 or speed_mph > 80
           or to_char(pickup_at, 'YYYY-MM') <> source_month""")
    assert survivors == [(0,)]


def test_marts_keep_the_architecture_contract(tlc_built: Built) -> None:
    """ml/ and api/ read these names and types; dim_zones has every zone with the three airports flagged."""
    training = _columns(tlc_built, "marts", "ml_fare_training")
    assert {name: training.get(name) for name in TRAINING_CONTRACT} == TRAINING_CONTRACT
    zones = _columns(tlc_built, "marts", "dim_zones")
    assert {name: zones.get(name) for name in ZONES_CONTRACT} == ZONES_CONTRACT
    assert tlc_built.rows("select count(*), count(centroid_lat) from marts.dim_zones") == [(265, 263)]
    assert tlc_built.rows("select zone_id from marts.dim_zones where is_airport order by 1") == [(1,), (132,), (138,)]


def test_seeds_keep_their_types(tlc_built: Built) -> None:
    for table, expected in SEED_TYPES.items():
        found = tlc_built.rows(
            "select attname, format_type(atttypid, atttypmod) from pg_attribute"
            " where attrelid = %s::regclass and attnum > 0 and not attisdropped",
            (f"marts.{table}",),
        )
        assert dict(found) == expected, table


def test_fare_summary_has_percentiles_per_zone_pair_hour_and_service(tlc_built: Built) -> None:
    """The analysts' summary covers every trip of fct_trips once, with ordered percentiles."""
    summary = tlc_built.rows(
        "select sum(trips)::int, count(*) filter (where p25_rider_fare > median_rider_fare "
        "or median_rider_fare > p75_rider_fare) from marts.zone_pair_hourly_fares"
    )
    assert summary == tlc_built.rows("select count(*)::int, 0::bigint from marts.fct_trips")


def test_every_unit_test_of_the_models_passes(tlc_built: Built, tmp_path: Path) -> None:
    """dbt's unit tests (formulas, outlier rules, month planning on fixed rows), as CI and an analyst run them: the
    nightly build leaves them out (fares.chain.stages.run_transform), so here they run on their own, on each server."""
    settings = Settings(database_url=tlc_built.wh.url(), data_dir=tmp_path / "data")
    target = tmp_path / "target"
    run_dbt(settings, tlc_built.wh, ["test", "--select", "test_type:unit", "--target-path", str(target)])
    ran = json.loads((target / "run_results.json").read_text())["results"]  # with the project's hooks
    results = [r for r in ran if r["unique_id"].startswith("unit_test.")]
    unit_tests = json.loads((target / "manifest.json").read_text())["unit_tests"]
    assert len(unit_tests) >= 19 and sorted(r["unique_id"] for r in results) == sorted(unit_tests)
    assert {r["status"] for r in results} == {"pass"}


def test_docs_site_describes_every_model(tlc_built: Built, tmp_path: Path) -> None:
    """`dbt docs generate` builds the site, and every model and column in it carries a description."""
    # --no-compile: the build already compiled into this target; `fares docs` compiles as well.
    settings = Settings(database_url=tlc_built.wh.url(), data_dir=tmp_path / "data")
    run_dbt(settings, tlc_built.wh, ["docs", "generate", "--no-compile", "--target-path", str(tlc_built.target)])
    assert (tlc_built.target / "index.html").stat().st_size > 100_000
    manifest = json.loads((tlc_built.target / "manifest.json").read_text())
    catalog = json.loads((tlc_built.target / "catalog.json").read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    assert "model.fares.ml_fare_training" in catalog["nodes"]
    undocumented = [key for key, node in models.items() if not node["description"].strip()]
    undocumented += [
        f"{key}.{col}"
        for key, node in models.items()
        for col in catalog["nodes"][key]["columns"]
        if not node["columns"].get(col, {}).get("description", "").strip()
    ]
    assert undocumented == []


def test_synthetic_mirror_builds_with_both_months_aligned(synthetic_built: Built) -> None:
    """On the synthetic mirror every month has both services, so every month is trained on and counts add up."""
    assert synthetic_built.rows("select source_month, is_aligned from intermediate.int_months_aligned order by 1") == [
        ("2024-01", True),
        ("2024-02", True),
    ]
    per_month = synthetic_built.rows(
        "select source_month, service, count(*) from marts.ml_fare_training group by 1, 2 order by 1, 2"
    )
    assert [(m, s) for m, s, _ in per_month] == [
        ("2024-01", "taxi"),
        ("2024-01", "uber"),
        ("2024-02", "taxi"),
        ("2024-02", "uber"),
    ]
    assert all(n > 2_000 for *_, n in per_month)
    for month, service, raw, kept, removed in _counts_vs_raw(synthetic_built):
        assert removed == raw - kept, (month, service, raw, kept, removed)
    days = synthetic_built.rows("select min(days_covered) from marts.service_month_coverage where service = 'uber'")
    assert days[0][0] >= 28


def test_tariff_periods_and_the_holdout_window_on_real_data(tlc_built: Built) -> None:
    """The rate card pivots into its eleven periods (2004-05-03 to today), the JFK rush-hour surcharge from 2015-07-16
    only; the holdout is the last shared hour of the one Uber evening; the typicals (January to April) and the Uber
    level come from the trips before it only."""
    periods = tlc_built.rows(
        "select valid_from::text, initial_charge, unit_charge, jfk_flat_fare, jfk_rush_hour_surcharge"
        " from marts.taxi_tariff_periods order by 1"
    )
    assert len(periods) == 11
    assert periods[0] == ("2004-05-03", 2.5, 0.4, 45.0, 0.0) and ("2012-09-04", 2.5, 0.5, 52.0, 0.0) in periods
    assert ("2015-01-01", 2.5, 0.5, 52.0, 0.0) in periods and ("2015-07-16", 2.5, 0.5, 52.0, 4.5) in periods
    assert ("2022-12-19", 3.0, 0.7, 70.0, 5.0) in periods
    # Uber's one evening has three shared hours; two of them would take more than half its trips, so the holdout
    # stops at the last hour, short of its minimum (2,000 trips of each service), and says so.
    [window] = tlc_built.rows(
        "select holdout_from::text, holdout_month, shared_hours, holdout_hours, holdout_trips_taxi, holdout_trips_uber,"
        " holdout_cells, has_minimum from marts.ml_holdout_window"
    )
    assert window[:4] == ("2020-04-30 21:00:00", "2020-04", 3, 1) and window[-1] is False
    taxi, uber = tlc_built.rows(
        "select count(*) filter (where service = 'taxi'), count(*) filter (where service = 'uber')"
        " from marts.fct_trips where pickup_at >= '2020-04-30 21:00'"
    )[0]
    assert window[4:6] == (taxi, uber) and 1_000 < uber < 3_500 and window[6] >= 1
    before = tlc_built.rows("select count(*) from marts.fct_trips where pickup_at < '2020-04-30 21:00'")[0][0]
    assert tlc_built.rows("select sum(trips) from marts.zone_pair_hourly_typicals") == [(before,)]
    levels = tlc_built.rows("select source_month, trips, price_level from marts.uber_monthly_price_levels")
    assert [(m, round(level, 1)) for m, _, level in levels] and levels[0][0] == "2020-04" and 0.5 < levels[0][2] < 5


def test_sql_and_python_meter_agree_on_real_trips(tlc_built: Built) -> None:
    """ml_fare_training.meter_fare (dbt macro) and fares.ml.tariff.meter_fare give the same dollars for every trip."""
    import numpy as np
    import pandas as pd

    from fares.ml.tariff import ROUTE_FLAGS, ROUTE_SHARES, Tariff, meter_fare

    rows = tlc_built.rows(
        "select t.pickup_at, t.trip_miles, t.duration_minutes, t.meter_fare, "
        + ", ".join(f"p.{f}" for f in (*ROUTE_FLAGS, *ROUTE_SHARES))
        + " from marts.ml_fare_training t join marts.dim_zone_pairs p using (pickup_zone_id, dropoff_zone_id)"
    )
    card = pd.DataFrame(
        tlc_built.rows("select charge, amount_usd, effective_from, effective_to from marts.taxi_rate_card"),
        columns=["charge", "amount_usd", "effective_from", "effective_to"],
    )
    frame = pd.DataFrame(rows, columns=["pickup_at", "miles", "minutes", "meter_fare", *ROUTE_FLAGS, *ROUTE_SHARES])
    got = meter_fare(
        Tariff(card),
        pd.to_datetime(frame.pickup_at).to_numpy(),
        frame.miles.to_numpy(dtype=float),
        frame.minutes.to_numpy(dtype=float),
        {f: frame[f].to_numpy(dtype=bool) for f in ROUTE_FLAGS}
        | {f: frame[f].to_numpy(dtype=float) for f in ROUTE_SHARES},
    )
    assert len(frame) > 15_000 and frame.meter_fare.notna().all()
    np.testing.assert_allclose(np.round(got, 2), frame.meter_fare.to_numpy(dtype=float), atol=0.011)


def test_charge_incidence_is_learned_from_the_trips_own_fields(tlc_built: Built) -> None:
    """Yellow 2020-01..04 and FHVHV 2020-04 carry congestion_surcharge: every raw trip with the field (0 or more) and
    both zones counts once, its share of payers per pair is what dim_zone_pairs expects where the pair has 30 trips
    (var charge_incidence_min_trips), and the zone lists decide elsewhere; no file has cbd_congestion_fee before
    2025."""
    counted = tlc_built.rows(
        "select sum(congestion_trips), sum(congestion_paid_trips), sum(relief_trips)"
        " from marts.zone_pair_charge_incidence"
    )[0]
    raw = tlc_built.rows(
        "select count(*) filter (where congestion_surcharge >= 0), count(*) filter (where congestion_surcharge > 0)"
        " from (select congestion_surcharge, pu_location_id, do_location_id, tpep_pickup_datetime as at"
        " from raw.yellow_trips union all select congestion_surcharge, pu_location_id, do_location_id,"
        " pickup_datetime from raw.fhvhv_trips) t"
        " where at >= '2019-02-02' and pu_location_id is not null and do_location_id is not null"
    )[0]
    assert counted == (raw[0], raw[1], 0) and raw[0] > 40_000 and 0.5 < raw[1] / raw[0] < 0.95
    learned, fallback = tlc_built.rows(
        "select count(*) filter (where i.congestion_trips >= 30 and p.congestion_incidence = i.congestion_paid_share),"
        " count(*) filter (where coalesce(i.congestion_trips, 0) < 30"
        " and p.congestion_incidence = case when p.is_congestion_trip then 1 else 0 end)"
        " from marts.dim_zone_pairs p left join marts.zone_pair_charge_incidence i"
        " using (pickup_zone_id, dropoff_zone_id)"
    )[0]
    assert learned > 50 and learned + fallback == 265 * 265
    # Upper East Side North to itself: in the zone by the list and by its trips (nearly every one paid)
    [(share,)] = tlc_built.rows(
        "select congestion_incidence from marts.dim_zone_pairs where pickup_zone_id = 236 and dropoff_zone_id = 236"
    )
    assert 0.9 < share <= 1.0
    assert tlc_built.rows(
        "select count(*) from marts.dim_zone_pairs where relief_zone_incidence <> "
        "case when is_relief_zone_trip then 1 else 0 end"
    ) == [(0,)]


def test_the_zone_lists_place_the_boundary_zones_in_dim_zones(tlc_built: Built) -> None:
    """Clinton West is in the relief zone, Roosevelt Island and Lenox Hill East are not, Upper West Side North is in
    the congestion zone (a centroid-latitude cut had all four wrong)."""
    rows = tlc_built.rows(
        "select zone_id, is_congestion_zone, is_relief_zone from marts.dim_zones"
        " where zone_id in (50, 140, 202, 238) order by 1"
    )
    assert rows == [(50, True, True), (140, True, False), (202, False, False), (238, True, False)]
    assert tlc_built.rows(
        "select count(*) filter (where is_congestion_zone), count(*) filter (where is_relief_zone) from marts.dim_zones"
    ) == [(49, 38)]
