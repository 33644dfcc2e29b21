"""Finding TLC files in a folder source: flat, or in trip-data/ and misc/ as on the TLC's site."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fares.ingestion.sources import Source, Unpublished, trip_file_name


def test_flat_folder(tmp_path: Path) -> None:
    (tmp_path / "yellow_tripdata_2024-01.parquet").write_bytes(b"x" * 10)
    info = Source(str(tmp_path)).probe(trip_file_name("yellow", "2024-01"))
    assert info.location == str(tmp_path / "yellow_tripdata_2024-01.parquet")
    assert info.size == 10


def test_tlc_layout_folder(tmp_path: Path) -> None:
    (tmp_path / "trip-data").mkdir()
    (tmp_path / "misc").mkdir()
    (tmp_path / "trip-data" / "fhvhv_tripdata_2024-02.parquet").write_bytes(b"x")
    (tmp_path / "misc" / "taxi_zones.zip").write_bytes(b"x")
    src = Source(str(tmp_path) + "/")
    assert src.probe("fhvhv_tripdata_2024-02.parquet").location.endswith("trip-data/fhvhv_tripdata_2024-02.parquet")
    assert src.probe("taxi_zones.zip").location.endswith("misc/taxi_zones.zip")
    assert src.list_months("fhvhv") == ["2024-02"]
    assert src.list_months("yellow") == []


def test_missing_file_is_unpublished_and_named(tmp_path: Path) -> None:
    with pytest.raises(Unpublished, match=re.escape("yellow_tripdata_2030-01.parquet: not found in")):
        Source(str(tmp_path)).probe("yellow_tripdata_2030-01.parquet")


def test_a_folder_fetch_is_the_file_itself(tmp_path: Path) -> None:
    (tmp_path / "taxi_zone_lookup.csv").write_text("LocationID\n")
    src = Source(str(tmp_path))
    assert src.fetch(src.probe("taxi_zone_lookup.csv"), tmp_path / "downloads") == tmp_path / "taxi_zone_lookup.csv"
    assert not (tmp_path / "downloads").exists()


def test_a_missing_folder_is_refused_by_name() -> None:
    import pytest

    from fares.ingestion.sources import Source, SourceError

    with pytest.raises(SourceError, match="/no/such/tlc"):
        Source("/no/such/tlc")
