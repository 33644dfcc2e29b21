"""Ingest from a folder: real TLC samples, schema drift, reloads, bad files, deterministic samples."""

from __future__ import annotations

import shutil
from dataclasses import asdict
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from fares.config.settings import Settings
from fares.config.warehouse import get_warehouse
from fares.ingestion.pipeline import ingest, ingest_status
from fares.ingestion.synthetic import write_mirror

pytestmark = pytest.mark.integration

YELLOW_TYPES = {
    "vendor_id": "bigint",
    "tpep_pickup_datetime": "timestamp without time zone",
    "passenger_count": "double precision",
    "ratecode_id": "double precision",
    "pu_location_id": "bigint",
    "payment_type": "bigint",
    "total_amount": "double precision",
    "airport_fee": "double precision",
    "cbd_congestion_fee": "double precision",
}


def _query(settings: Settings, sql: str, *params: object) -> list[tuple]:
    with get_warehouse(settings).connect() as conn:
        return conn.execute(sql, params).fetchall()


def _month_counts(settings: Settings, table: str) -> dict[str, int]:
    return dict(_query(settings, f"select source_month, count(*) from raw.{table} group by 1"))


def _statuses(report) -> dict[str, str]:
    return {r.file: r.status for r in report.results}


def test_real_samples_load_exactly_once(fresh_settings: Settings, tlc_samples: Path) -> None:
    wh = get_warehouse(fresh_settings)
    report = ingest(fresh_settings, wh, source=str(tlc_samples))
    assert not report.failed
    expected = {f.name[-15:-8]: pq.ParquetFile(f).metadata.num_rows for f in tlc_samples.glob("yellow_*.parquet")}
    assert _month_counts(fresh_settings, "yellow_trips") == expected
    assert _month_counts(fresh_settings, "fhvhv_trips") == {"2020-04": 10_000}
    assert _query(fresh_settings, "select count(*) from raw.zones") == [(265,)]
    assert _query(fresh_settings, "select count(distinct location_id), count(*) from raw.zone_shapes") == [(263, 263)]
    lat, lon = _query(fresh_settings, "select centroid_lat, centroid_lon from raw.zone_shapes where location_id = 1")[0]
    assert abs(lat - 40.69) < 0.01 and abs(lon + 74.17) < 0.01  # Newark Airport, in WGS84
    types = dict(
        _query(
            fresh_settings,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'yellow_trips'",
        )
    )
    assert {k: types[k] for k in YELLOW_TYPES} == YELLOW_TYPES
    assert not [c for c in types if "__v_" in c]
    # NYC wall clock stays as it is in the file.
    first = pq.read_table(tlc_samples / "yellow_tripdata_2020-01.parquet").column("tpep_pickup_datetime")
    assert _query(
        fresh_settings, "select min(tpep_pickup_datetime) from raw.yellow_trips where source_month = '2020-01'"
    )[0][0] == min(first.to_pylist())

    again = ingest(fresh_settings, wh, source=str(tlc_samples))
    assert not again.loaded and not again.failed
    assert _month_counts(fresh_settings, "yellow_trips") == expected
    status = {row.file: asdict(row) for row in ingest_status(fresh_settings, wh)}
    assert status["yellow_tripdata_2020-03.parquet"]["rows"] == 10_000
    assert status["yellow_tripdata_2020-03.parquet"]["status"] == "loaded"


def test_drift_and_reload_replace_the_month(fresh_settings: Settings, tmp_path: Path) -> None:
    wh = get_warehouse(fresh_settings)
    write_mirror(tmp_path, ["2021-12", "2025-01"], rows_per_month=1_500)
    assert not ingest(fresh_settings, wh, source=str(tmp_path)).failed
    fees = _query(
        fresh_settings,
        "select source_month, count(airport_fee), count(cbd_congestion_fee) "
        "from raw.yellow_trips group by 1 order by 1",
    )
    assert fees == [("2021-12", 0, 0), ("2025-01", 1_500, 1_500)]

    write_mirror(tmp_path, ["2025-01"], rows_per_month=900, seed=5)
    report = ingest(fresh_settings, wh, source=str(tmp_path))
    assert _statuses(report)["yellow_tripdata_2025-01.parquet"] == "loaded"
    assert _statuses(report)["yellow_tripdata_2021-12.parquet"] == "skipped"
    assert _month_counts(fresh_settings, "yellow_trips") == {"2021-12": 1_500, "2025-01": 900}
    assert _month_counts(fresh_settings, "fhvhv_trips") == {"2021-12": 1_500, "2025-01": 900}


def test_bad_files_fail_alone_and_lose_nothing(fresh_settings: Settings, tmp_path: Path, tlc_samples: Path) -> None:
    wh = get_warehouse(fresh_settings)
    src = tmp_path / "src"
    src.mkdir()
    for name in ("taxi_zone_lookup.csv", "yellow_tripdata_2020-01.parquet", "yellow_tripdata_2020-02.parquet"):
        shutil.copy(tlc_samples / name, src / name)
    assert not ingest(fresh_settings, wh, source=str(src), kinds=("yellow",)).failed

    scrambled = bytearray((src / "yellow_tripdata_2020-01.parquet").read_bytes())
    for i in range(1_000, len(scrambled) // 2, 7):  # damaged data pages behind an intact footer
        scrambled[i] = (scrambled[i] * 31 + 7) % 256
    (src / "yellow_tripdata_2020-01.parquet").write_bytes(bytes(scrambled))
    data = (src / "yellow_tripdata_2020-02.parquet").read_bytes()
    (src / "yellow_tripdata_2020-02.parquet").write_bytes(data[: len(data) // 2])  # a truncated download
    shutil.copy(tlc_samples / "yellow_tripdata_2020-03.parquet", src)
    table = pq.read_table(tlc_samples / "yellow_tripdata_2020-04.parquet")
    pq.write_table(table.drop_columns(["fare_amount"]), src / "yellow_tripdata_2020-04.parquet")
    with (src / "taxi_zone_lookup.csv").open("a") as fh:
        fh.write('"junk","row",,\n')

    report = ingest(fresh_settings, wh, source=str(src), months=["2020-01..2020-04"], kinds=("yellow",))
    errors = {r.file: r.error or "" for r in report.failed}
    assert set(errors) == {
        "taxi_zone_lookup.csv",
        "yellow_tripdata_2020-01.parquet",
        "yellow_tripdata_2020-02.parquet",
        "yellow_tripdata_2020-04.parquet",
    }
    assert errors["yellow_tripdata_2020-01.parquet"].startswith("yellow_tripdata_2020-01.parquet: corrupted")
    assert errors["yellow_tripdata_2020-02.parquet"].startswith("yellow_tripdata_2020-02.parquet: ")
    assert "parquet" in errors["yellow_tripdata_2020-02.parquet"].split(": ", 1)[1]
    assert "missing required column(s) fare_amount" in errors["yellow_tripdata_2020-04.parquet"]
    assert "line 267" in errors["taxi_zone_lookup.csv"] and "'junk'" in errors["taxi_zone_lookup.csv"]
    assert _statuses(report)["yellow_tripdata_2020-03.parquet"] == "loaded"
    assert _month_counts(fresh_settings, "yellow_trips") == {"2020-01": 10_000, "2020-02": 10_000, "2020-03": 10_000}
    assert _query(fresh_settings, "select count(*) from raw.zones") == [(265,)]
    status = {row.file: asdict(row) for row in ingest_status(fresh_settings, wh)}
    assert status["yellow_tripdata_2020-02.parquet"]["status"] == "failed"
    assert status["yellow_tripdata_2020-02.parquet"]["rows"] == 10_000  # what is still loaded


def test_sample_keeps_the_same_rows(fresh_settings: Settings, tlc_samples: Path) -> None:
    wh = get_warehouse(fresh_settings)

    def load(fraction: float) -> set[str]:
        report = ingest(
            fresh_settings, wh, source=str(tlc_samples), months=["2020-04"], kinds=("fhvhv",), sample=fraction
        )
        assert not report.failed
        return {r[0] for r in _query(fresh_settings, "select _dlt_id from raw.fhvhv_trips")}

    first = load(0.3)
    assert 2_700 < len(first) < 3_300
    assert len(load(0.6)) > 5_000
    assert load(0.3) == first
