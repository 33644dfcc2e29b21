"""Incremental dbt by file month: a new month builds only itself, a reloaded month rebuilds only itself, and both give
exactly the marts a full refresh gives."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.engines.transform import run_dbt
from fares.ingestion.pipeline import ingest
from fares.ingestion.synthetic import write_mirror

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


def _build(settings: Settings, wh: Warehouse, target: Path, *extra: str) -> list[str]:
    """`dbt build`; returns the months it said it builds ("trip months to build: [2024-03] (1 of 3 loaded months)")."""
    out = run_dbt(settings, wh, ["build", "--target-path", str(target), *extra]).stdout
    said = re.search(r"trip months to build: \[([^\]]*)\]", out)
    assert said, out[-2000:]
    return [m for m in said.group(1).split(", ") if m]


def _tested_months(target: Path) -> str:
    """The month restriction the last `dbt build` gave a trip-grain test (the stored trips' unique key)."""
    sql = next(target.glob("run/**/unique_int_trips_kept_trip_id.sql")).read_text()
    found = re.search(r"where (source_month in \([^)]*\)|false)\) dbt_subquery", sql)
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
    assert _tested_months(target) == "source_month in ('2024-01', '2024-02')"  # the first build tests what it built
    before = _row_versions(fresh_db)

    load(MONTHS[2:])  # the nightly case: one new month
    assert _build(settings, fresh_db, target) == ["2024-03"]
    assert _tested_months(target) == "source_month in ('2024-03')"
    after = _row_versions(fresh_db)
    assert after["2024-01"] == before["2024-01"] and after["2024-02"] == before["2024-02"]
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
    settled = _row_versions(fresh_db)
    assert _build(settings, fresh_db, target) == ["2024-02"]
    rebuilt = _row_versions(fresh_db)
    assert rebuilt["2024-01"] == settled["2024-01"] and rebuilt["2024-03"] == settled["2024-03"]
    assert rebuilt["2024-02"] != settled["2024-02"]
    reloaded = _snapshot(fresh_db)
    uber_feb = [r for r in reloaded["cleaning_rule_counts"] if r[:2] == ("2024-02", "uber")]
    assert uber_feb and all(r[5] < 1_000 for r in uber_feb)  # raw_trips now from the 1,000-row file
    assert _build(settings, fresh_db, target, "--full-refresh") == MONTHS
    assert _snapshot(fresh_db) == reloaded
