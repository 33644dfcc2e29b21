"""Raw trip tables partitioned by month: a reload swaps one partition, leaves the others alone, and fails safely."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import get_warehouse
from fares.engines.pg_partitions import month_partitions
from fares.ingestion.pipeline import ingest
from fares.ingestion.synthetic import write_mirror

pytestmark = pytest.mark.integration

MONTHS = ["2024-01", "2024-02", "2024-03"]


def _query(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with get_warehouse(settings).connect() as conn:
        return conn.execute(sql, params).fetchall()


def _month_counts(settings: Settings) -> dict[str, int]:
    return dict(_query(settings, "select source_month, count(*) from raw.yellow_trips group by 1"))


def _files(settings: Settings) -> dict[str, int]:
    """Each month partition's storage file: a partition that was not rewritten keeps its own."""
    parts = month_partitions(get_warehouse(settings), "yellow_trips")
    return {
        m: _query(settings, "select relfilenode from pg_class where relname = %s", p)[0][0] for m, p in parts.items()
    }


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    write_mirror(tmp_path / "mirror", MONTHS, rows_per_month=3_000, seed=11)
    return tmp_path / "mirror"


def _shrink(path: Path, rows: int) -> None:
    pq.write_table(pq.read_table(path).slice(0, rows), path)


def test_reload_swaps_only_its_partition(fresh_settings: Settings, mirror: Path) -> None:
    wh = get_warehouse(fresh_settings)
    assert not ingest(fresh_settings, wh, source=str(mirror), months=MONTHS, kinds=("yellow",)).failed
    assert _query(fresh_settings, "select relkind from pg_class where relname = 'yellow_trips'") == [("p",)]
    before, counts = _files(fresh_settings), _month_counts(fresh_settings)
    assert set(before) == set(MONTHS) and all(n > 0 for n in counts.values())

    _shrink(mirror / "yellow_tripdata_2024-02.parquet", 1_234)  # a corrected file: fewer rows
    report = ingest(fresh_settings, wh, source=str(mirror), months=MONTHS, kinds=("yellow",))
    assert {r.file: r.status for r in report.results if r.month} == {
        "yellow_tripdata_2024-01.parquet": "skipped",
        "yellow_tripdata_2024-02.parquet": "loaded",
        "yellow_tripdata_2024-03.parquet": "skipped",
    }
    after = _files(fresh_settings)
    assert after["2024-01"] == before["2024-01"] and after["2024-03"] == before["2024-03"]
    assert after["2024-02"] != before["2024-02"]
    assert _month_counts(fresh_settings) == {**counts, "2024-02": 1_234}
    # the incoming table is left empty, ready for the next month
    assert _query(fresh_settings, "select count(*) from raw.yellow_trips_incoming") == [(0,)]


def test_a_month_is_vacuumed_before_it_is_swapped_in(fresh_settings: Settings, mirror: Path) -> None:
    """Every loaded month went through a VACUUM of its own (not autovacuum's) before it was in service, so the
    transform's first readers do not check and mark each row again (with data checksums, a page write each)."""
    wh = get_warehouse(fresh_settings)
    assert not ingest(fresh_settings, wh, source=str(mirror), months=MONTHS, kinds=("yellow",)).failed
    for month, part in month_partitions(wh, "yellow_trips").items():
        rows = _query(fresh_settings, "select vacuum_count from pg_stat_user_tables where relname = %s", part)
        assert rows and rows[0][0] >= 1, (month, part, rows)


def test_failed_load_keeps_the_old_partition(fresh_settings: Settings, mirror: Path) -> None:
    wh = get_warehouse(fresh_settings)
    assert not ingest(fresh_settings, wh, source=str(mirror), months=["2024-01"], kinds=("yellow",)).failed
    ids_before = _query(fresh_settings, "select count(*), min(_dlt_id), max(fare_amount) from raw.yellow_trips")
    # A new file with a fare the database refuses: the COPY into the incoming table fails half-way.
    path = mirror / "yellow_tripdata_2024-01.parquet"
    table = pq.read_table(path)
    raised = pc.add(pc.cast(table["fare_amount"], "float64"), 100_000.0)
    pq.write_table(table.set_column(table.schema.get_field_index("fare_amount"), "fare_amount", raised), path)
    with wh.connect(autocommit=True) as conn:
        conn.execute("alter table raw.yellow_trips_incoming add constraint sane_fare check (fare_amount < 10000)")
    report = ingest(fresh_settings, wh, source=str(mirror), months=["2024-01"], kinds=("yellow",))
    assert [r.file for r in report.failed] == ["yellow_tripdata_2024-01.parquet"]
    assert "sane_fare" in (report.failed[0].error or "")
    assert _query(fresh_settings, "select count(*), min(_dlt_id), max(fare_amount) from raw.yellow_trips") == ids_before


def test_an_unpartitioned_table_is_converted_once(fresh_settings: Settings, mirror: Path) -> None:
    wh = get_warehouse(fresh_settings)
    assert not ingest(fresh_settings, wh, source=str(mirror), months=MONTHS[:2], kinds=("yellow",)).failed
    counts = _month_counts(fresh_settings)
    with wh.connect() as conn:  # what an older fares left: one plain table holding every month
        conn.execute("create table raw.yellow_trips_plain as select * from raw.yellow_trips")
        conn.execute("drop table raw.yellow_trips cascade")
        conn.execute("alter table raw.yellow_trips_plain rename to yellow_trips")
    assert not ingest(fresh_settings, wh, source=str(mirror), months=MONTHS[2:], kinds=("yellow",)).failed
    assert _query(fresh_settings, "select relkind from pg_class where relname = 'yellow_trips'") == [("p",)]
    assert set(month_partitions(wh, "yellow_trips")) == set(MONTHS)
    assert {m: n for m, n in _month_counts(fresh_settings).items() if m in counts} == counts
