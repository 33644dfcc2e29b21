"""Month arguments: single months, ranges, lists, and the errors a user sees for bad ones."""

from __future__ import annotations

import pytest

from fares.ingestion.months import MonthError, add_months, month_of_file, parse_months


def test_single_months_are_sorted_and_unique() -> None:
    assert parse_months(["2024-02", "2024-01", "2024-02"]) == ["2024-01", "2024-02"]


def test_range_spans_a_year_end() -> None:
    assert parse_months(["2023-11..2024-02"]) == ["2023-11", "2023-12", "2024-01", "2024-02"]


def test_ranges_and_commas_mix() -> None:
    assert parse_months(["2024-01..2024-03,2024-06", "2024-05"]) == [
        "2024-01",
        "2024-02",
        "2024-03",
        "2024-05",
        "2024-06",
    ]


@pytest.mark.parametrize("bad", ["2024-13", "24-01", "2024/01", "january", "2008-12"])
def test_bad_month_is_named_in_the_error(bad: str) -> None:
    with pytest.raises(MonthError, match=bad):
        parse_months([bad])


def test_backwards_range_is_refused() -> None:
    with pytest.raises(MonthError, match="ends before it starts"):
        parse_months(["2024-06..2024-01"])


def test_add_months_crosses_years_both_ways() -> None:
    assert add_months("2024-12", 1) == "2025-01"
    assert add_months("2024-01", -1) == "2023-12"
    assert add_months("2024-03", -15) == "2022-12"


def test_month_of_file() -> None:
    assert month_of_file("fhvhv_tripdata_2025-01.parquet") == "2025-01"
    assert month_of_file("taxi_zones.zip") is None
