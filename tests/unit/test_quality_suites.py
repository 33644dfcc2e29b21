"""The quality suites as data, and the summary a user reads when the gate fails (no database, no GX run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fares.quality.results import CheckResult, format_summary
from fares.quality.suites import (
    CRITICAL,
    KINDS,
    TRAINING_NOT_NULL,
    WARNING,
    check_month,
    month_bounds,
    raw_batch,
    training_batches,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
YELLOW = KINDS[0]


def _by_name(batch):
    return {c.name: c for c in batch.checks}


def test_month_bounds_cover_the_month_and_roll_over_the_year() -> None:
    assert month_bounds("2020-04") == ("2020-04-01 00:00:00", "2020-05-01 00:00:00")
    assert month_bounds("2024-12") == ("2024-12-01 00:00:00", "2025-01-01 00:00:00")


@pytest.mark.parametrize("bad", ["2020-13", "2020-4", "20-04", "2020-04'; drop table raw.zones; --"])
def test_months_that_are_not_yyyy_mm_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="2024-01"):
        check_month(bad)


def test_raw_batch_reads_one_month_and_checks_pickups_inside_it() -> None:
    batch = raw_batch(YELLOW, "2020-04", list(range(1, 266)), None, 0.5)
    assert (batch.table, batch.where, batch.query) == ("raw.yellow_trips", {"source_month": "2020-04"}, None)
    pickup = _by_name(batch)["pickup_in_file_month"]
    assert pickup.kwargs["column"] == "tpep_pickup_datetime"
    assert (pickup.kwargs["min_value"], pickup.kwargs["max_value"]) == month_bounds("2020-04")
    assert pickup.kwargs["strict_max"] is True and pickup.severity == CRITICAL


def test_row_count_band_is_strict_around_the_previous_month() -> None:
    batch = raw_batch(YELLOW, "2020-05", list(range(1, 266)), ("2020-04", 10_000), 0.5)
    check = _by_name(batch)["row_count_vs_previous_month"]
    low, high = check.kwargs["min_value"], check.kwargs["max_value"]
    assert check.kwargs["strict_min"] and check.kwargs["strict_max"]
    # half the rows (a change of exactly the band) fails; anything strictly inside passes
    assert not low < 5_000 < high and low < 5_001 < high and low < 14_999 < high and not low < 15_001 < high
    assert "2020-04 (10,000 rows)" in check.description


def test_first_month_has_no_row_count_check() -> None:
    assert "row_count_vs_previous_month" not in _by_name(raw_batch(YELLOW, "2020-01", [1, 2, 3], None, 0.5))


def test_zone_check_uses_a_range_when_ids_are_contiguous_and_a_set_otherwise() -> None:
    contiguous = _by_name(raw_batch(YELLOW, "2020-04", list(range(1, 266)), None, 0.5))["pu_location_id_known_zone"]
    assert contiguous.expectation == "ExpectColumnValuesToBeBetween"
    assert (contiguous.kwargs["min_value"], contiguous.kwargs["max_value"]) == (1, 265)
    gappy = _by_name(raw_batch(YELLOW, "2020-04", [1, 2, 5], None, 0.5))["pu_location_id_known_zone"]
    assert gappy.expectation == "ExpectColumnValuesToBeInSet" and gappy.kwargs["value_set"] == [1, 2, 5]


def test_fingerprint_changes_with_the_data_and_the_previous_month() -> None:
    base = raw_batch(YELLOW, "2020-04", [1, 2], ("2020-03", 10), 0.5, "rows=10|load=1").fingerprint
    assert base == raw_batch(YELLOW, "2020-04", [1, 2], ("2020-03", 10), 0.5, "rows=10|load=1").fingerprint
    assert base != raw_batch(YELLOW, "2020-04", [1, 2], ("2020-03", 10), 0.5, "rows=10|load=2").fingerprint
    assert base != raw_batch(YELLOW, "2020-04", [1, 2], ("2020-03", 11), 0.5, "rows=10|load=1").fingerprint


def test_training_batches_cover_each_service_and_the_window() -> None:
    batches = {b.label: b for b in training_batches(["2020-04"])}
    assert set(batches) == {"all", "taxi", "uber", "aligned window"}
    # the whole batch reads one row (columns, not empty); each service's batch is one pass over its trips
    assert batches["all"].query == "select * from marts.ml_fare_training where source_month in ('2020-04') limit 1"
    assert all("source_month in ('2020-04')" in (batches[s].query or "") for s in ("taxi", "uber"))
    # the window probes each (month, service) pair for a first trip rather than reading every trip of the view
    window = batches["aligned window"].query or ""
    for service in ("taxi", "uber"):
        assert f"where source_month = '2020-04' and service = '{service}' limit 1" in window
    assert "distinct" not in window and "distinct source_month, service" in (training_batches()[-1].query or "")
    assert "service = 'uber'" in (batches["uber"].query or "")
    assert {c.name for c in batches["taxi"].checks} == {
        "service_present",
        *(f"{c}_not_null" for c in TRAINING_NOT_NULL),
        "rider_fare_q10",
        "rider_fare_q50",
        "rider_fare_q90",
    }
    assert all(f"count(*) - count({c}) as {c}_nulls" in (batches["uber"].query or "") for c in TRAINING_NOT_NULL)
    assert all(c.severity in (CRITICAL, WARNING) for b in batches.values() for c in b.checks)


def _result(check: str, severity: str, success: bool, **extra: Any) -> CheckResult:
    return CheckResult(
        "raw.yellow_trips",
        "2020-05",
        check,
        "expect_column_values_to_be_between",
        severity,
        success,
        "fare_amount between 0 and 1000",
        **extra,
    )


def test_summary_names_table_month_check_rows_and_examples() -> None:
    results = [
        _result(
            "fare_amount_in_range",
            CRITICAL,
            False,
            element_count=5000,
            unexpected_count=528,
            unexpected_percent=10.56,
            examples=["-30.15", "-11", "-7.5", "-5", "-7.5", "-9"],
        ),
        _result(
            "trip_distance_in_range",
            WARNING,
            False,
            element_count=5000,
            unexpected_count=3,
            unexpected_percent=0.06,
            examples=["250"],
        ),
        _result("dropoff_after_pickup", WARNING, True),
    ]
    text = format_summary("raw", "r1", results)
    lines = text.splitlines()
    assert lines[0] == ("quality gate (raw) FAILED: 3 checks on 1 batches, 1 critical failures, 1 warnings (run r1)")
    assert lines[1] == "critical:"
    assert lines[2] == (
        "  - raw.yellow_trips 2020-05: fare_amount_in_range [expect_column_values_to_be_between] "
        "(fare_amount between 0 and 1000): 528 of 5,000 rows fail (10.56%); "
        "e.g. -30.15, -11, -7.5, -5, -7.5"
    )
    assert lines[3] == "warnings:" and "trip_distance_in_range" in lines[4] and len(lines) == 5


def test_a_pass_with_only_warnings_says_passed() -> None:
    text = format_summary("raw", "r2", [_result("trip_distance_in_range", WARNING, False, observed_value="3")])
    assert text.startswith("quality gate (raw) passed:") and "observed 3" in text


def test_importing_the_stage_does_not_import_great_expectations() -> None:
    code = "import sys, fares.quality, fares.quality.validate; print('great_expectations' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_training_checks_cover_exactly_the_columns_the_models_read() -> None:
    """The gate checks what ml/ reads (plus source_month, the batch key): no more, no less."""
    from fares.ml.sample import COLUMNS as READ
    from fares.quality.suites import TRAINING_COLUMNS as CHECKED

    assert set(CHECKED) == {*READ, "source_month"}
    checked = {c.kwargs.get("column") for b in training_batches() if b.label == "all" for c in b.checks}
    assert checked - {None} <= set(CHECKED)


def test_a_raw_month_is_tallied_in_one_query_with_a_count_for_each_row_check() -> None:
    batch = raw_batch(KINDS[1], "2020-05", [1, 2, 5], ("2020-04", 10_000), 0.5)
    assert batch.tally is not None
    query, tallied = batch.tally.query, {c.name: c for c in batch.tally.checks}
    assert query.count(" from ") == 1 and query.endswith("from raw.fhvhv_trips where source_month = '2020-05'")
    rows = _by_name(batch)
    # every check that reads rows is tallied under its own name and severity; the columns check reads the catalog
    assert set(rows) - set(tallied) == {"required_columns"}
    for name, check in tallied.items():
        assert check.severity == rows[name].severity and f" as {check.kwargs['column']}" in query
    assert tallied["pickup_in_file_month"].kwargs["min_value"] == rows["pickup_in_file_month"].kwargs["mostly"]
    assert "pickup_datetime < timestamp '2020-06-01 00:00:00'" in query
    assert (
        tallied["pickup_datetime_not_null"].kwargs["min_value"],
        tallied["pickup_datetime_not_null"].kwargs["max_value"],
    ) == (0, 0)
    assert "pu_location_id in (1, 2, 5)" in query and "hvfhs_license_num in ('HV0002'" in query
    count = tallied["row_count_vs_previous_month"].kwargs
    assert (
        count["strict_min"]
        and count["strict_max"]
        and count["min_value"] == rows["row_count_vs_previous_month"].kwargs["min_value"]
    )
