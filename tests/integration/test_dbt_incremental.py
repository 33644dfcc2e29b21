"""Incremental dbt by file month: a new month builds only itself, a reloaded month rebuilds only itself, and both give
exactly the marts a full refresh gives."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fares.chain.stages import run_transform
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.engines.transform import DbtFailed, run_dbt
from fares.ingestion.pipeline import ingest
from fares.ingestion.synthetic import write_mirror
from fares.ops.ledger import built_trip_months, plan_trip_months
from tests.conftest import embedded_server_only

pytestmark = pytest.mark.integration

MONTHS = ["2024-01", "2024-02", "2024-03"]

# What an analyst reads, month by month: equal after incremental builds and after a full refresh.
SNAPSHOT = {
    "fct_trips": "select source_month, service, count(*), round(sum(rider_fare)::numeric, 2) from marts.fct_trips"
    " group by 1, 2",
    "ml_fare_training": "select source_month, service, count(*), round(sum(meter_fare)::numeric, 2)"
    " from marts.ml_fare_training group by 1, 2",
    "cleaning_rule_counts": "select source_month, service, rule_name, trips_removed, trips_flagged, raw_trips,"
    " kept_trips from marts.cleaning_rule_counts",
    "fences": "select service, source_month, fare_per_mile_ln_low, fare_per_mile_ln_high"
    " from intermediate.int_fare_per_mile_fences",
    "coverage": "select source_month, service, trips, days_covered, hours_covered from marts.service_month_coverage",
    "hourly": "select source_month, service, count(*), sum(trips) from marts.zone_pair_hourly_fares group by 1, 2",
    "zone_pairs": "select count(*), sum(trips), round(sum(typical_trip_miles)::numeric, 3)"
    " from marts.zone_pair_hourly_typicals",
    "charge_months": "select source_month, count(*), sum(congestion_trips), sum(congestion_paid_trips)"
    " from intermediate.int_zone_pair_charge_months group by 1",
    "charge_incidence": "select sum(congestion_trips), sum(congestion_paid_trips), sum(relief_trips)"
    " from marts.zone_pair_charge_incidence",
}


def _rows(wh: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    with wh.connect() as conn:
        return sorted(conn.execute(sql).fetchall(), key=repr)


def _snapshot(wh: Warehouse) -> dict[str, list[tuple[Any, ...]]]:
    return {name: _rows(wh, sql) for name, sql in SNAPSHOT.items()}


def _row_versions(wh: Warehouse) -> dict[str, set[str]]:
    """The transaction ids that wrote each month's stored trips (int_trips_kept): a month not rebuilt keeps its own."""
    rows = _rows(wh, "select source_month, array_agg(distinct xmin::text) from intermediate.int_trips_kept group by 1")
    return {month: set(xids) for month, xids in rows}


def _partitions(wh: Warehouse) -> dict[str, int]:
    """The stored trips' month partitions (macros/month_partitions.sql): {month: the partition's table oid}."""
    rows = _rows(
        wh,
        "select substring(pg_get_expr(c.relpartbound, c.oid) from '''([0-9-]+)'''), c.oid::bigint from pg_inherits i"
        " join pg_class c on c.oid = i.inhrelid where i.inhparent = 'intermediate.int_trips_kept'::regclass",
    )
    assert _rows(wh, "select relkind::text from pg_class where oid = 'intermediate.int_trips_kept'::regclass") == [
        ("p",)
    ]
    return dict(rows)


def _said(out: str, what: str) -> list[str]:
    """The months dbt logged: "trip months to build: [2024-03] (...)", "trip months tested: [2024-03]"."""
    said = re.search(rf"trip months {what}: \[([^\]]*)\]", out)
    assert said, out[-2000:]
    return [m for m in said.group(1).split(", ") if m]


def _build(settings: Settings, wh: Warehouse, target: Path, *extra: str) -> list[str]:
    """`dbt build`; returns the months it said it builds, after checking it tests exactly those."""
    out = run_dbt(settings, wh, ["build", "--target-path", str(target), *extra]).stdout
    assert _said(out, "tested") == _said(out, "to build")
    return _said(out, "to build")


def _tested_where(target: Path) -> str:
    """The restriction the last `dbt build` gave a trip-grain test (the stored trips' key): its own `where` config."""
    sql = next(target.glob("run/**/unique_key_int_trips_kept_trip_id.sql")).read_text()
    found = re.search(
        r"where (source_month >= \(select min\(source_month\) from [^)]*\)"
        r" and source_month in \(select source_month from [^)]*\))\) dbt_subquery",
        sql,
    )
    assert found, sql
    return found.group(1)


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    write_mirror(tmp_path / "mirror", MONTHS, rows_per_month=2_500, seed=5)
    return tmp_path / "mirror"


def test_new_and_reloaded_months_build_only_themselves_and_equal_a_full_refresh(
    fresh_db: Warehouse, tmp_path: Path, mirror: Path
) -> None:
    settings = Settings(database_url=fresh_db.url(), data_dir=tmp_path / "data")
    target = tmp_path / "target"

    def load(months: list[str]) -> None:
        assert not ingest(settings, fresh_db, source=str(mirror), months=months, progress=False).failed

    load(MONTHS[:2])
    assert _build(settings, fresh_db, target) == MONTHS[:2]
    assert "trip_months_tested" in _tested_where(target)  # the test's own where, over the months built
    before = _row_versions(fresh_db)
    parts = _partitions(fresh_db)
    assert sorted(parts) == MONTHS[:2]  # one partition per month

    load(MONTHS[2:])  # the nightly case: one new month
    assert _build(settings, fresh_db, target) == ["2024-03"]
    after = _row_versions(fresh_db)
    assert after["2024-01"] == before["2024-01"] and after["2024-02"] == before["2024-02"]
    # the new month is written once, into a partition of its own; the others are the same tables as before
    assert _partitions(fresh_db) == {**parts, "2024-03": _partitions(fresh_db)["2024-03"]}
    incremental = _snapshot(fresh_db)
    assert {r[0] for r in incremental["fct_trips"]} == set(MONTHS)

    assert _build(settings, fresh_db, target) == []  # nothing new: nothing planned, nothing rewritten
    assert _row_versions(fresh_db) == after

    assert _build(settings, fresh_db, target, "--full-refresh") == MONTHS
    assert _snapshot(fresh_db) == incremental

    # A corrected February file: only February is rebuilt, and the marts equal a full refresh again.
    path = mirror / "fhvhv_tripdata_2024-02.parquet"
    pq.write_table(pq.read_table(path).slice(0, 1_000), path)
    load(["2024-02"])
    # the plan in plain sight, before building: only February's raw load is newer than its last build
    shown = run_dbt(settings, fresh_db, ["run-operation", "show_trip_months"]).stdout
    plan = json.loads(re.search(r"trip months: (\{.*\})", shown).group(1))  # type: ignore[union-attr]
    assert sorted(plan) == MONTHS and [m for m, ids in plan.items() if ids["raw"] > ids["built"]] == ["2024-02"]
    assert "2024-02: a build would rebuild it" in shown and "2024-01: a build" not in shown
    settled = _row_versions(fresh_db)
    settled_parts = _partitions(fresh_db)
    assert _build(settings, fresh_db, target) == ["2024-02"]
    rebuilt = _row_versions(fresh_db)
    assert rebuilt["2024-01"] == settled["2024-01"] and rebuilt["2024-03"] == settled["2024-03"]
    assert rebuilt["2024-02"] != settled["2024-02"]
    rebuilt_parts = _partitions(fresh_db)  # February's partition replaced, the others untouched
    assert [m for m in MONTHS if rebuilt_parts[m] != settled_parts[m]] == ["2024-02"]
    reloaded = _snapshot(fresh_db)
    uber_feb = [r for r in reloaded["cleaning_rule_counts"] if r[:2] == ("2024-02", "uber")]
    assert uber_feb and all(r[5] < 1_000 for r in uber_feb)  # raw_trips now from the 1,000-row file
    assert _build(settings, fresh_db, target, "--full-refresh") == MONTHS
    assert _snapshot(fresh_db) == reloaded

    # An older fares stored the trips in one plain table: the next build, with nothing new, rebuilds it as partitions.
    with fresh_db.connect() as conn:
        conn.execute("create table intermediate.kept_plain as select * from intermediate.int_trips_kept")
        conn.execute("drop table intermediate.int_trips_kept cascade")
        conn.execute("alter table intermediate.kept_plain rename to int_trips_kept")
    assert _build(settings, fresh_db, target) == []
    assert sorted(_partitions(fresh_db)) == MONTHS
    assert _snapshot(fresh_db) == reloaded

    # The stored columns no longer the model's: a month is not swapped in, the build says so, nothing is lost.
    with fresh_db.connect() as conn:
        conn.execute("alter table intermediate.int_trips_kept add column added_by_hand integer")
    kept, versions = _partitions(fresh_db), _row_versions(fresh_db)
    with pytest.raises(DbtFailed, match=r"(?s)added_by_hand integer.*--full-refresh"):
        run_dbt(settings, fresh_db, ["build", "--target-path", str(target), "--vars", '{"trip_months": ["2024-01"]}'])
    assert _partitions(fresh_db) == kept and _row_versions(fresh_db) == versions  # the same tables, the same rows


def _transform(settings: Settings, wh: Warehouse) -> tuple[list[str], list[str]]:
    """The transform stage (months from the ledger, as the var trip_months); the months it built and tested."""
    out = run_transform(settings, wh).stdout
    return _said(out, "to build"), _said(out, "tested")


def _row_rule_failures(wh: Warehouse, target: Path) -> list[tuple[Any, ...]]:
    """What the stored trips' row_rules test returns when run by hand: (rule, failing rows) per failing rule."""
    sql = next(target.glob("compiled/**/row_rules_int_trips_kept_*.sql")).read_text()
    return _rows(wh, sql)


@embedded_server_only
def test_the_transform_stage_builds_and_tests_the_ledgers_months(
    fresh_db: Warehouse, tmp_path: Path, mirror: Path
) -> None:
    settings = Settings(database_url=fresh_db.url(), data_dir=tmp_path / "data")
    target = tmp_path / "target"

    def load(months: list[str]) -> None:
        assert not ingest(settings, fresh_db, source=str(mirror), months=months, progress=False).failed

    load(MONTHS[:2])
    assert _transform(settings, fresh_db) == (MONTHS[:2], MONTHS[:2])
    assert plan_trip_months(fresh_db).loads == {}  # the ledger knows both are built
    assert sorted(built_trip_months(fresh_db)) == MONTHS[:2]

    # A stored January trip goes bad behind dbt's back, and another takes its id: only tests over January can see it.
    with fresh_db.connect() as conn:
        conn.execute(
            "update intermediate.int_trips_kept set rider_fare = 10000 where trip_id ="
            " (select min(trip_id) from intermediate.int_trips_kept where source_month = '2024-01')"
        )
        conn.execute(
            "update intermediate.int_trips_kept set trip_id ="
            " (select min(trip_id) from intermediate.int_trips_kept where source_month = '2024-01') where trip_id ="
            " (select max(trip_id) from intermediate.int_trips_kept where source_month = '2024-01')"
        )
        found = conn.execute(
            "select min(trip_id) from intermediate.int_trips_kept where source_month = '2024-01'"
        ).fetchone()
        assert found is not None
        duplicated = found[0]
    assert _transform(settings, fresh_db) == ([], [])  # nothing new: no month built, no trip-grain month tested
    assert _build(settings, fresh_db, target) == []  # a plain `dbt build` alike

    # February reloaded: the stage rebuilds and re-tests February alone; January (and its bad row) is left alone.
    path = mirror / "yellow_tripdata_2024-02.parquet"
    pq.write_table(pq.read_table(path).slice(0, 1_500), path)
    load(["2024-02"])
    assert plan_trip_months(fresh_db).loads.keys() == {"2024-02"}
    assert "2024-02" not in built_trip_months(fresh_db)  # loaded again, not built yet: the gate re-validates it
    before = _row_versions(fresh_db)
    assert _transform(settings, fresh_db) == (["2024-02"], ["2024-02"])
    after = _row_versions(fresh_db)
    assert after["2024-01"] == before["2024-01"] and after["2024-02"] != before["2024-02"]

    # `dbt test` checks every month: it finds the bad January row, and the rule that names it counts it.
    with pytest.raises(DbtFailed, match="row_rules_int_trips_kept"):
        run_dbt(settings, fresh_db, ["test", "--target-path", str(target)])
    assert _row_rule_failures(fresh_db, target) == [("rider_fare_in_range", 1)]
    # the key test (hashes first, macros/tests/test_unique_key.sql) names the id found twice
    key_test = next(target.glob("compiled/**/unique_key_int_trips_kept_trip_id.sql")).read_text()
    assert _rows(fresh_db, key_test) == [(duplicated, 2)]

    # --full-refresh rebuilds and tests every month (the bad row is rebuilt from raw), and refuses a month list.
    assert _build(settings, fresh_db, target, "--full-refresh") == MONTHS[:2]
    assert _row_rule_failures(fresh_db, target) == []
    key_test = next(target.glob("compiled/**/unique_key_int_trips_kept_trip_id.sql")).read_text()
    assert _rows(fresh_db, key_test) == []
    with pytest.raises(DbtFailed, match="do not also pass the trip_months var"):
        run_dbt(settings, fresh_db, ["build", "--full-refresh", "--vars", '{"trip_months": ["2024-01"]}'])
