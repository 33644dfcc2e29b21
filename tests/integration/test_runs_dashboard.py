"""The runs dashboard and the manual trigger, served by the API on a real PostgreSQL."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_scheduler_chain import probe_stages

from fares.api.app import create_app
from fares.chain import pipeline
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.ops import locks, runs

pytestmark = pytest.mark.integration
TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def settings(fresh_db: Warehouse, tmp_path: Path) -> Settings:
    """Settings with an admin token on an empty database."""
    from conftest import settings_for

    return settings_for(fresh_db, tmp_path / "data", admin_token="s3cret", stage_retries=0)


def test_the_dashboard_shows_runs_their_error_log_and_charts(settings: Settings, fresh_db: Warehouse) -> None:
    ok = pipeline.run_once(settings, stages=probe_stages())
    bad = pipeline.run_once(settings, stages=probe_stages(fail="validate"))
    with fresh_db.connect() as conn:
        conn.execute(
            "insert into ops.ingested_files (file, kind, month, source, rows, status)"
            " values ('yellow_tripdata_2024-01.parquet', 'yellow', '2024-01', 'x', 1234, 'loaded')"
        )
    with TestClient(create_app(settings, poll_seconds=0), headers=TOKEN) as client:  # ops pages: the admin token
        page = client.get("/runs")
        assert page.status_code == 200
        assert page.text.index(f'href="/runs/{bad.run_id}"') < page.text.index(f'href="/runs/{ok.run_id}"')
        assert 'aria-label="rows loaded per month"' in page.text and ">1,234<" in page.text
        detail = client.get(f"/runs/{bad.run_id}")
        assert detail.status_code == 200
        assert "validate failed: ValueError: validate: 3 rows have a negative fare" in detail.text
        assert f"[run {bad.run_id}] run {bad.run_id}: validate" in detail.text  # the log, tagged
        log = client.get(f"/runs/{bad.run_id}/log")
        assert log.status_code == 200 and f"[run {bad.run_id}]" in log.text
        assert client.get("/runs/9999").status_code == 404
        assert client.get(f"/v1/runs/{ok.run_id}").json()["status"] == "succeeded"
        assert client.get("/reports/..%2F..%2Fetc").status_code == 404
        assert client.get("/dbt-docs/profiles.yml").status_code == 404
        assert client.get("/dbt-docs/").status_code == 404  # not generated yet
        docs = settings.dbt_dir / "target"  # where `fares docs` has dbt write it: the data folder, not the package
        docs.mkdir(parents=True)
        (docs / "index.html").write_text("<title>dbt Docs</title>")
        served = client.get("/dbt-docs/")
        assert served.status_code == 200 and "<title>dbt Docs</title>" in served.text


def test_post_admin_runs_starts_a_recorded_run_and_returns_its_id(settings: Settings, fresh_db: Warehouse) -> None:
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        assert client.post("/v1/admin/runs", json={"stages": ["publish"]}).status_code == 401
        bad = client.post("/v1/admin/runs", json={"stages": ["deploy"]}, headers=TOKEN)
        assert bad.status_code == 422 and "unknown stage 'deploy'" in bad.json()["detail"]
        started = client.post("/v1/admin/runs", json={"stages": ["publish"], "months": ["2024-01"]}, headers=TOKEN)
        assert started.status_code == 202, started.text
        run_id = started.json()["run_id"]
        deadline = time.monotonic() + 30
        while runs.get_run(fresh_db, run_id).status == "running" and time.monotonic() < deadline:
            time.sleep(0.1)
        run = runs.get_run(fresh_db, run_id)
        assert (run.status, run.trigger, run.months) == ("succeeded", "api", ["2024-01"])
        with locks.try_lock(fresh_db, locks.RUN_LOCK) as got:
            assert got
            busy = client.post("/v1/admin/runs", json={}, headers=TOKEN)
        assert busy.status_code == 409 and "another run holds the lock" in busy.json()["detail"]
