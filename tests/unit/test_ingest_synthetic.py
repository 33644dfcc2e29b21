"""The synthetic TLC mirror: deterministic, TLC-shaped, fares that follow the published rules, some outliers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from fares.ingestion.synthetic import write_mirror
from fares.ingestion.synthetic_trips import make_fhvhv_month, make_yellow_month
from fares.ingestion.zones import read_zone_shapes, read_zone_table

ROWS = 5_000


@pytest.fixture(scope="module")
def mirror(tmp_path_factory: pytest.TempPathFactory) -> Path:
    dest = tmp_path_factory.mktemp("mirror")
    write_mirror(dest, ["2021-12", "2025-01"], rows_per_month=ROWS, seed=7)
    return dest


def test_mirror_has_tlc_file_names(mirror: Path) -> None:
    assert sorted(p.name for p in mirror.iterdir()) == [
        "fares-source.json",
        "fhvhv_tripdata_2021-12.parquet",
        "fhvhv_tripdata_2025-01.parquet",
        "taxi_zone_lookup.csv",
        "taxi_zones.zip",
        "yellow_tripdata_2021-12.parquet",
        "yellow_tripdata_2025-01.parquet",
    ]


def test_same_seed_same_files(mirror: Path, tmp_path: Path) -> None:
    write_mirror(tmp_path, ["2025-01"], rows_per_month=ROWS, seed=7)
    for name in ("yellow_tripdata_2025-01.parquet", "fhvhv_tripdata_2025-01.parquet"):
        assert pq.read_table(tmp_path / name).equals(pq.read_table(mirror / name))
    write_mirror(tmp_path / "other", ["2025-01"], rows_per_month=ROWS, seed=8)
    assert not pq.read_table(tmp_path / "other" / name).equals(pq.read_table(mirror / name))


def test_columns_drift_like_the_real_files(mirror: Path) -> None:
    old = pq.read_schema(mirror / "yellow_tripdata_2021-12.parquet").names
    new = pq.read_schema(mirror / "yellow_tripdata_2025-01.parquet").names
    assert "Airport_fee" not in old and "cbd_congestion_fee" not in old
    assert {"Airport_fee", "cbd_congestion_fee", "PULocationID", "tpep_pickup_datetime"} <= set(new)
    fhv = pq.read_schema(mirror / "fhvhv_tripdata_2025-01.parquet")
    assert len(fhv.names) == 25 and "cbd_congestion_fee" in fhv.names
    assert str(fhv.field("pickup_datetime").type) == "timestamp[us]"


def test_yellow_total_is_the_sum_of_its_parts() -> None:
    t = make_yellow_month("2025-01", ROWS).to_pandas()
    ok = t[t.fare_amount > 0]
    parts = ok[
        [
            "fare_amount",
            "extra",
            "mta_tax",
            "tip_amount",
            "tolls_amount",
            "improvement_surcharge",
            "congestion_surcharge",
            "Airport_fee",
            "cbd_congestion_fee",
        ]
    ].sum(axis=1)
    assert np.allclose(parts, ok.total_amount, atol=0.011)
    assert (ok.fare_amount >= 3.70).all()


def test_jfk_manhattan_is_the_flat_fare() -> None:
    t = make_yellow_month("2024-06", ROWS).to_pandas()
    flat = t[(t.RatecodeID == 2) & (t.PULocationID < 264)]
    assert len(flat) > 20
    assert set(flat.fare_amount.abs()) == {70.0}
    assert ((flat.PULocationID == 132) | (flat.DOLocationID == 132)).all()
    metered = t[(t.RatecodeID == 1) & (t.fare_amount > 0) & (t.trip_distance > 0)]
    assert np.corrcoef(metered.trip_distance, metered.fare_amount)[0, 1] > 0.9


def test_uber_surges_at_weekday_peaks() -> None:
    t = make_fhvhv_month("2024-06", 20_000).to_pandas()
    t = t[(t.base_passenger_fare > 0) & (t.trip_miles > 1)]
    per_mile = t.base_passenger_fare / t.trip_miles
    weekday = t.pickup_datetime.dt.dayofweek < 5
    peak = per_mile[weekday & t.pickup_datetime.dt.hour.isin([8, 17])].median()
    midday = per_mile[weekday & t.pickup_datetime.dt.hour.isin([11, 13])].median()
    assert peak > midday * 1.15
    assert set(t.hvfhs_license_num) == {"HV0003", "HV0005"}
    assert (t.hvfhs_license_num == "HV0003").mean() > 0.6


def test_outliers_exist_for_the_cleaning_rules() -> None:
    t = make_yellow_month("2024-06", ROWS).to_pandas()
    assert (t.trip_distance == 0).sum() > 0
    assert (t.fare_amount < 0).sum() > 0
    assert t.PULocationID.isin([264, 265]).sum() > 0
    outside = (t.tpep_pickup_datetime < "2024-06-01") | (t.tpep_pickup_datetime >= "2024-07-01")
    assert 0 < outside.sum() < ROWS * 0.02


def test_zone_files_read_back(mirror: Path) -> None:
    zones = read_zone_table(mirror / "taxi_zone_lookup.csv")
    assert len(zones) == 265 and zones[131]["zone"] == "JFK Airport"
    shapes = {s["location_id"]: s for s in read_zone_shapes(mirror / "taxi_zones.zip")}
    assert sorted(shapes) == list(range(1, 264))
    jfk = shapes[132]
    assert abs(jfk["centroid_lat"] - 40.647) < 0.02 and abs(jfk["centroid_lon"] + 73.787) < 0.02
    assert jfk["geometry_wkt"].startswith("POLYGON ((-73.")
