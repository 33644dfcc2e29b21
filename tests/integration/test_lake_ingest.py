"""Ingest into the Spark engine's parquet lake (no JVM): pinned schema, a version folder per load, bad files, ledger."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import get_warehouse
from fares.ingestion.pipeline import ingest
from fares.ingestion.schema import target_schema
from fares.ingestion.synthetic import write_mirror
from tests.conftest import InterruptedWriter

pytestmark = pytest.mark.integration


def _lake(settings: Settings) -> Settings:
    return settings.model_copy(update={"engine": "spark"})


def _month_dir(settings: Settings, table: str, month: str) -> Path:
    return Path(settings.lake_location) / "raw" / table / f"source_month={month}"


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))


def _versions(folder: Path) -> list[str]:
    """The month's version folders (load ids), oldest first."""
    return sorted((p.name for p in folder.iterdir() if p.is_dir()), key=float)


def _ledger(settings: Settings, file: str) -> tuple[Any, ...]:
    """(status, rows, load id) of `file` in the ledger."""
    with get_warehouse(settings).connect() as conn:
        row = conn.execute("select status, rows, load_id from ops.ingested_files where file = %s", (file,)).fetchone()
    assert row is not None, f"{file} is not in the ledger"
    return tuple(row)


def test_tlc_months_land_as_parquet_with_the_pinned_schema(fresh_settings: Settings, tlc_samples: Path) -> None:
    settings = _lake(fresh_settings)
    report = ingest(settings, get_warehouse(settings), source=str(tlc_samples), months=["2020-04"], progress=False)
    assert not report.failed
    status, rows, load_id = _ledger(settings, "yellow_tripdata_2020-04.parquet")
    assert (status, rows) == ("loaded", 10_000)
    april = _month_dir(settings, "yellow_trips", "2020-04")
    assert _versions(april) == [load_id]  # one folder per load, named by its load id
    assert _rows(april / load_id) == 10_000
    fhvhv = _month_dir(settings, "fhvhv_trips", "2020-04")
    assert _rows(fhvhv / _ledger(settings, "fhvhv_tripdata_2020-04.parquet")[2]) == 10_000
    lake_file = next((april / load_id).glob("*.parquet"))
    schema = pq.read_schema(lake_file)
    for field in target_schema("yellow"):
        assert schema.field(field.name).type == field.type, field.name
    lineage = pq.read_table(lake_file, columns=["source_file", "source_month"]).to_pylist()
    assert {tuple(row.values()) for row in lineage} == {("yellow_tripdata_2020-04.parquet", "2020-04")}
    with get_warehouse(settings).connect() as conn:  # raw data is not in PostgreSQL
        assert conn.execute("select to_regclass('raw.yellow_trips')").fetchone() == (None,)


def test_a_reloaded_month_is_written_beside_the_version_it_replaces(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = _lake(fresh_settings)
    wh = get_warehouse(settings)
    write_mirror(tmp_path / "mirror", ["2024-01", "2024-02"], rows_per_month=2_000)
    ingest(settings, wh, source=str(tmp_path / "mirror"), progress=False)
    name = "yellow_tripdata_2024-01.parquet"
    january = _month_dir(settings, "yellow_trips", "2024-01")
    first = _ledger(settings, name)[2]
    first_files = {f.name for f in (january / first).glob("*.parquet")}

    report = ingest(settings, wh, source=str(tmp_path / "mirror"), months=["2024-01"], sample=0.5, progress=False)
    status, rows, second = _ledger(settings, name)
    assert (status, rows) == ("loaded", {r.file: r.rows for r in report.loaded}[name])
    assert rows < 2_000
    assert _versions(january) == [first, second]  # written beside the old version, which is left as it was
    assert (_rows(january / second), _rows(january / first)) == (rows, 2_000)
    assert {f.name for f in (january / first).glob("*.parquet")} == first_files

    ingest(settings, wh, source=str(tmp_path / "mirror"), months=["2024-01"], progress=False)
    third = _ledger(settings, name)[2]
    assert _versions(january) == [second, third]  # bounded: the new version and the one it replaced
    assert _rows(january / third) == 2_000
    february = _month_dir(settings, "yellow_trips", "2024-02")
    assert _rows(february / _ledger(settings, "yellow_tripdata_2024-02.parquet")[2]) == 2_000  # untouched


def test_a_corrupt_file_fails_and_keeps_the_month_it_would_replace(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = _lake(fresh_settings)
    wh = get_warehouse(settings)
    mirror = tmp_path / "mirror"
    write_mirror(mirror, ["2024-01"], rows_per_month=2_000)
    ingest(settings, wh, source=str(mirror), progress=False)
    name = "yellow_tripdata_2024-01.parquet"
    january = _month_dir(settings, "yellow_trips", "2024-01")
    before = _ledger(settings, name)
    target = next(mirror.rglob(name))
    shutil.copy(target, tmp_path / "good.parquet")
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # a truncated download
    report = ingest(settings, wh, source=str(mirror), months=["2024-01"], progress=False)
    failed = {r.file: r.error for r in report.failed}
    assert name in failed and name in (failed[name] or "")
    assert _ledger(settings, name) == ("failed", 2_000, before[2])  # the load in service stays the old one
    assert _versions(january) == [before[2]]
    assert _rows(january / before[2]) == 2_000


def test_a_write_that_fails_midway_leaves_the_months_versions_as_they_were(
    fresh_settings: Settings, tmp_path: Path
) -> None:
    from fares.engines import get_engine
    from fares.engines.base import LoadError
    from fares.ingestion.loader import load_trip_file

    settings = _lake(fresh_settings)
    wh = get_warehouse(settings)
    mirror = tmp_path / "mirror"
    write_mirror(mirror, ["2024-01"], rows_per_month=3_000, row_group_size=1_000)
    ingest(settings, wh, source=str(mirror), progress=False)
    january = _month_dir(settings, "yellow_trips", "2024-01")
    before = _versions(january)
    writer = InterruptedWriter(get_engine(settings).raw_writer(wh))
    path = next(mirror.rglob("yellow_tripdata_2024-01.parquet"))
    with pytest.raises(LoadError, match="connection reset"):
        load_trip_file(writer, path, "yellow", "2024-01")
    assert _versions(january) == before
    assert _rows(january / before[0]) == 3_000
