"""What a model learned from, by the ingest ledger and the sources' manifests: synthetic, TLC-shaped files, TLC."""

from __future__ import annotations

import pytest

from fares.ingestion.provenance import describe_data_source, label

pytestmark = pytest.mark.integration


def test_a_synthetic_mirror_is_named_synthetic(synthetic_built) -> None:
    doc = describe_data_source(synthetic_built.wh, ["2024-01", "2024-02", "2024-03"])
    assert doc["kind"] == "synthetic" and doc["synthetic"] is True
    assert doc["months"] == ["2024-01", "2024-02"]  # what was loaded, not what was asked
    assert doc["label"] == "synthetic TLC-shaped trips 2024-01..2024-02: not real fares"


def test_a_folder_of_real_files_is_named_by_its_location(tlc_built, tlc_samples) -> None:
    doc = describe_data_source(tlc_built.wh, ["2020-04"])
    assert doc["kind"] == "files" and doc["synthetic"] is False and doc["months"] == ["2020-04"]
    assert doc["locations"] == [str(tlc_samples)] and doc["sample"] == {}
    assert doc["label"] == f"TLC-shaped files 2020-04 from {tlc_samples}"


def test_months_nothing_was_loaded_for_are_unknown(tlc_built) -> None:
    assert describe_data_source(tlc_built.wh, ["2019-01"])["kind"] == "unknown"


def test_labels_for_people() -> None:
    tlc = {"kind": "tlc", "months": ["2025-09"], "sample": {"yellow": 0.0331, "fhvhv": 0.0101}}
    assert label(tlc) == "TLC trip records 2025-09 (sample: yellow 3.3%, HVFHV 1.0%)"
    mixed = {"kind": "mixed", "synthetic": True, "months": ["2025-01", "2025-09"]}
    assert label(mixed) == "TLC-shaped trips 2025-01..2025-09 from several sources, some synthetic"
