"""Ingest into the Spark engine's parquet lake (no JVM): pinned schema, month replacement, bad files, ledger."""

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

pytestmark = pytest.mark.integration


def _lake(settings: Settings) -> Settings:
    return settings.model_copy(update={"engine": "spark"})


def _month_dir(settings: Settings, table: str, month: str) -> Path:
    return Path(settings.lake_location) / "raw" / table / f"source_month={month}"


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in folder.glob("*.parquet"))


def _ledger(settings: Settings, file: str) -> tuple[Any, ...]:
    with get_warehouse(settings).connect() as conn:
        row = conn.execute("select status, rows from ops.ingested_files where file = %s", (file,)).fetchone()
    assert row is not None, f"{file} is not in the ledger"
    return tuple(row)


def test_tlc_months_land_as_parquet_with_the_pinned_schema(fresh_settings: Settings, tlc_samples: Path) -> None:
    settings = _lake(fresh_settings)
    report = ingest(settings, get_warehouse(settings), source=str(tlc_samples), months=["2020-04"], progress=False)
    assert not report.failed
    yellow = _month_dir(settings, "yellow_trips", "2020-04")
    assert _rows(yellow) == 10_000
    assert _rows(_month_dir(settings, "fhvhv_trips", "2020-04")) == 10_000
    schema = pq.read_schema(next(yellow.glob("*.parquet")))
    for field in target_schema("yellow"):
        assert schema.field(field.name).type == field.type, field.name
    assert _ledger(settings, "yellow_tripdata_2020-04.parquet") == ("loaded", 10_000)
    with get_warehouse(settings).connect() as conn:  # raw data is not in PostgreSQL
        assert conn.execute("select to_regclass('raw.yellow_trips')").fetchone() == (None,)


def test_a_reloaded_month_replaces_its_files(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = _lake(fresh_settings)
    wh = get_warehouse(settings)
    write_mirror(tmp_path / "mirror", ["2024-01", "2024-02"], rows_per_month=2_000)
    ingest(settings, wh, source=str(tmp_path / "mirror"), progress=False)
    january = _month_dir(settings, "yellow_trips", "2024-01")
    before = {f.name for f in january.glob("*.parquet")}
    report = ingest(settings, wh, source=str(tmp_path / "mirror"), months=["2024-01"], sample=0.5, progress=False)
    loaded = {r.file: r.rows for r in report.loaded}
    after = {f.name for f in january.glob("*.parquet")}
    assert _rows(january) == loaded["yellow_tripdata_2024-01.parquet"]
    assert _rows(january) < 2_000
    assert not before & after  # the old files are gone, not merely added to
    assert _rows(_month_dir(settings, "yellow_trips", "2024-02")) == 2_000  # the other month is untouched


def test_a_corrupt_file_fails_and_keeps_the_month_it_would_replace(fresh_settings: Settings, tmp_path: Path) -> None:
    settings = _lake(fresh_settings)
    wh = get_warehouse(settings)
    mirror = tmp_path / "mirror"
    write_mirror(mirror, ["2024-01"], rows_per_month=2_000)
    ingest(settings, wh, source=str(mirror), progress=False)
    name = "yellow_tripdata_2024-01.parquet"
    target = next(mirror.rglob(name))
    shutil.copy(target, tmp_path / "good.parquet")
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])  # a truncated download
    report = ingest(settings, wh, source=str(mirror), months=["2024-01"], progress=False)
    failed = {r.file: r.error for r in report.failed}
    assert name in failed and name in (failed[name] or "")
    assert _rows(_month_dir(settings, "yellow_trips", "2024-01")) == 2_000
    assert _ledger(settings, name) == ("failed", 2_000)
