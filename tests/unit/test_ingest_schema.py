"""Conforming TLC batches of any vintage to the pinned raw schema; deterministic sampling."""

from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pyarrow as pa
import pytest

from fares.ingestion.loader import sample_mask
from fares.ingestion.schema import SchemaError, check_columns, conform, normalize_name, target_schema


def _old_yellow(n: int = 3) -> pa.Table:
    # A 2019-style file: no airport_fee, no cbd_congestion_fee, int64 vendor, double ratecode.
    return pa.table(
        {
            "VendorID": pa.array([1, 2, 1][:n], pa.int64()),
            "tpep_pickup_datetime": pa.array([datetime(2019, 1, 1, 0, 5)] * n, pa.timestamp("ns")),
            "tpep_dropoff_datetime": pa.array([datetime(2019, 1, 1, 0, 15)] * n, pa.timestamp("ns")),
            "passenger_count": pa.array([1, 2, 1][:n], pa.int64()),
            "trip_distance": pa.array([1.0, 2.5, 0.0][:n]),
            "RatecodeID": pa.array([1.0, 2.0, 1.0][:n]),
            "PULocationID": pa.array([161, 132, 264][:n], pa.int32()),
            "DOLocationID": pa.array([236, 230, 264][:n], pa.int32()),
            "fare_amount": pa.array([9.0, 52.0, -3.0][:n]),
            "total_amount": pa.array([12.3, 60.0, -3.0][:n]),
            "extra_unknown_column": pa.array(["x"] * n),
        }
    )


def test_names_follow_dlt_snake_case() -> None:
    assert [normalize_name(n) for n in ("PULocationID", "VendorID", "RatecodeID", "Airport_fee", "tips")] == [
        "pu_location_id",
        "vendor_id",
        "ratecode_id",
        "airport_fee",
        "tips",
    ]


def test_old_file_conforms_to_the_pinned_schema() -> None:
    out = conform(_old_yellow(), "yellow", "yellow_tripdata_2019-01.parquet", "2019-01")
    assert out.schema == target_schema("yellow")
    assert out.column("passenger_count").to_pylist() == [1.0, 2.0, 1.0]
    assert out.column("pu_location_id").to_pylist() == [161, 132, 264]
    assert out.column("airport_fee").null_count == 3
    assert out.column("cbd_congestion_fee").null_count == 3
    assert set(out.column("source_month").to_pylist()) == {"2019-01"}
    assert set(out.column("source_file").to_pylist()) == {"yellow_tripdata_2019-01.parquet"}
    assert out.column("tpep_pickup_datetime").to_pylist()[0] == datetime(2019, 1, 1, 0, 5)
    assert "extra_unknown_column" not in out.schema.names


def test_missing_required_column_names_file_and_column() -> None:
    with pytest.raises(
        SchemaError,
        match=r"yellow_tripdata_2024-01\.parquet: missing required column\(s\) "
        r"fare_amount",
    ):
        check_columns(
            "yellow", [n for n in _old_yellow().schema.names if n != "fare_amount"], "yellow_tripdata_2024-01.parquet"
        )


def test_uncastable_column_names_file_and_column() -> None:
    bad = _old_yellow().set_column(4, "trip_distance", pa.array(["one", "two", "three"]))
    with pytest.raises(SchemaError, match=re.escape("yellow_tripdata_2019-01.parquet: column trip_distance")):
        conform(bad, "yellow", "yellow_tripdata_2019-01.parquet", "2019-01")


def test_sample_is_the_same_rows_every_time_and_close_to_the_fraction() -> None:
    first = sample_mask(0, 100_000, 0.1)
    assert np.array_equal(first, sample_mask(0, 100_000, 0.1))
    assert 0.09 < first.mean() < 0.11
    # Batch boundaries do not change which rows are kept.
    assert np.array_equal(first, np.concatenate([sample_mask(0, 30_000, 0.1), sample_mask(30_000, 70_000, 0.1)]))
