"""The walking skeleton: the whole chain on the real TLC samples, on each real PostgreSQL, then a quote."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from fares.config.warehouse import scalar

pytestmark = pytest.mark.integration


def _count(chain, sql: str) -> int:
    with chain.wh.connect() as conn:
        return scalar(conn, sql)


def test_raw_holds_every_row_of_the_april_files(tlc_chain, tlc_samples) -> None:
    for kind, table in (("yellow", "raw.yellow_trips"), ("fhvhv", "raw.fhvhv_trips")):
        expected = pq.ParquetFile(tlc_samples / f"{kind}_tripdata_2020-04.parquet").metadata.num_rows
        got = _count(tlc_chain, f"select count(*) from {table} where source_month = '2020-04'")
        assert got == expected, f"{table}: {got} rows loaded, the file has {expected}"
    assert _count(tlc_chain, "select count(*) from raw.zones") == 265


def test_training_mart_has_every_clean_month_of_each_service(tlc_chain) -> None:
    """Yellow January to April, Uber its one April evening: each service learns from all its months."""
    with tlc_chain.wh.connect() as conn:
        rows = conn.execute(
            "select service, min(source_month), max(source_month), count(*)"
            " from marts.ml_fare_training group by 1 order by 1"
        ).fetchall()
    assert [(r[0], r[1], r[2]) for r in rows] == [("taxi", "2020-01", "2020-04"), ("uber", "2020-04", "2020-04")]
    assert all(r[3] > 100 for r in rows)
    # the run's records count the training mart from the month-level mart (not by joining every trip again): the same
    with tlc_chain.wh.connect() as conn:
        counted = conn.execute(
            "select s.stage, s.rows_in, s.rows_out from ops.stage_runs s join ops.pipeline_runs p using (run_id)"
            " where s.stage in ('transform', 'validate', 'train') and p.status = 'succeeded'"
        ).fetchall()
    trips = sum(r[3] for r in rows)
    with tlc_chain.wh.connect() as conn:  # and raw's rows from the ledger
        raw = scalar(conn, "select (select count(*) from raw.yellow_trips) + (select count(*) from raw.fhvhv_trips)")
    assert [rows_in for stage, rows_in, _ in counted if stage == "transform"] == [raw]
    assert {
        stage: n for stage, rows_in, rows_out in counted for n in (rows_out if stage == "transform" else rows_in,)
    } == {
        "transform": trips,
        "validate": trips,
        "train": trips,
    }


def test_a_model_is_published_and_quotes_a_trip(tlc_chain) -> None:
    from fares.api.app import create_app

    assert tlc_chain.result.promoted and tlc_chain.result.model_version
    current = (tlc_chain.settings.models_dir / "CURRENT").read_text().strip()
    assert current == tlc_chain.result.model_version
    with TestClient(create_app(tlc_chain.settings)) as client:
        body = {"pickup_at": "2020-04-30T20:00:00", "pickup": {"zone_id": 161}, "dropoff": {"zone_id": 236}}
        r = client.post("/v1/quotes", json=body)
        assert r.status_code == 200, r.text
        quote = r.json()
        assert quote["model_version"] == current
        # the training sample's months: the newest three (FARES_TRAIN_MONTHS), yellow in each, Uber in April
        assert quote["data_source"]["kind"] == "files"
        assert quote["data_source"]["months"] == ["2020-02", "2020-03", "2020-04"]
        assert quote["data_source"]["synthetic"] is False
        assert quote["cheaper"] in ("taxi", "uber")
        assert quote["taxi"]["fare"] > 0 and quote["uber"]["fare"] > 0
        fares = {"taxi": quote["taxi"]["fare"], "uber": quote["uber"]["fare"]}
        assert quote["cheaper"] == min(fares, key=fares.__getitem__)
        assert quote["savings"] == pytest.approx(abs(fares["taxi"] - fares["uber"]), abs=0.01)
        assert client.get("/health").status_code == 200


def test_dbt_writes_under_the_data_folder_with_the_training_window_and_the_run_keeps_its_results(tlc_chain) -> None:
    from fares.ops import runs

    settings = tlc_chain.settings
    assert (settings.dbt_dir / "target" / "manifest.json").is_file()
    dbt_log = (settings.dbt_dir / "logs" / "dbt.log").read_text()
    assert f"'zone_pair_months': {settings.train_months}" in dbt_log  # FARES_TRAIN_MONTHS, passed as a dbt var
    [run] = runs.list_runs(tlc_chain.wh, limit=1)
    kept = json.loads((settings.data_dir / "runs" / str(run.run_id) / "run_results.json").read_text())
    built = {r["unique_id"]: r["status"] for r in kept["results"]}
    assert built["model.fares.ml_fare_training"] == "success"
    # the nightly build runs the data tests, not dbt's unit tests (CI and analysts run those: test_dbt_transform)
    assert any(uid.startswith("test.fares.") for uid in built)
    assert not [uid for uid in built if uid.startswith("unit_test.")]
