"""The gate inside the real chain (shared `tlc_chain` fixture): the real TLC samples pass, and every run is kept."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_real_samples_pass_both_scopes_and_the_runs_are_stored(tlc_chain) -> None:
    with tlc_chain.wh.connect() as conn:
        runs = conn.execute(
            "select scope, success, critical_failures, checks from ops.validation_runs order by started_at"
        ).fetchall()
        batches = conn.execute("select distinct table_name, batch from ops.validation_results order by 1, 2").fetchall()
    chain_runs = runs[:2]  # the chain's own; other tests on the shared fixture may validate again later
    assert [(r[0], r[1], r[2]) for r in chain_runs] == [("raw", True, 0), ("training", True, 0)]
    assert all(r[3] > 10 for r in chain_runs)
    assert batches == [
        # the training mart is validated month by month (each month once per build of it); a month is checked for
        # the services it has: yellow alone before April, both (and their alignment) in April
        ("marts.ml_fare_training", "2020-01"),
        ("marts.ml_fare_training", "2020-01 taxi"),
        ("marts.ml_fare_training", "2020-02"),
        ("marts.ml_fare_training", "2020-02 taxi"),
        ("marts.ml_fare_training", "2020-03"),
        ("marts.ml_fare_training", "2020-03 taxi"),
        ("marts.ml_fare_training", "2020-04"),
        ("marts.ml_fare_training", "2020-04 aligned window"),
        ("marts.ml_fare_training", "2020-04 taxi"),
        ("marts.ml_fare_training", "2020-04 uber"),
        ("raw.fhvhv_trips", "2020-04"),
        ("raw.yellow_trips", "2020-01"),
        ("raw.yellow_trips", "2020-02"),
        ("raw.yellow_trips", "2020-03"),
        ("raw.yellow_trips", "2020-04"),
    ]


def test_a_second_validation_skips_raw_months_that_did_not_change(tlc_chain) -> None:
    from fares.quality.validate import run_validation

    report = run_validation(tlc_chain.settings, tlc_chain.wh, "raw")

    assert report.success and report.results == []
    assert len(report.unchanged) == 5
    assert "5 batches unchanged since they passed" in report.summary()
