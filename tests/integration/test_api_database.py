"""The API beside a real PostgreSQL: /health, the run history in ops, and quotes that survive the database's loss."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from api_kit import registry_copy
from fastapi.testclient import TestClient

from fares.api.app import create_app
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, get_warehouse, stop_embedded

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

TRIP = {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}
ADMIN_TOKEN = "s3cret"
TOKEN = {"Authorization": "Bearer s3cret"}  # the run history is an ops page


@pytest.fixture
def db_settings(fresh_db: Warehouse, tlc_samples, tmp_path: Path) -> Settings:
    registry_copy(tlc_samples, tmp_path / "models")
    return Settings(database_url=fresh_db.url(), data_dir=tmp_path, admin_token=ADMIN_TOKEN)


def test_health_is_ok_with_a_model_and_a_database(db_settings: Settings) -> None:
    with TestClient(create_app(db_settings, poll_seconds=0)) as client:
        health = client.get("/health").json()
    assert health["status"] == "ok" and health["model_loaded"] and health["database_reachable"]
    assert health["database_error"] is None and health["model_version"]


def test_runs_are_empty_before_the_scheduler_records_any_then_newest_first(db_settings: Settings) -> None:
    from fares.ops import runs, schema

    wh = get_warehouse(db_settings)
    with TestClient(create_app(db_settings, poll_seconds=0)) as client:
        assert client.get("/v1/runs", headers=TOKEN).json() == []
        schema.migrate(wh)
        assert client.get("/v1/runs", headers=TOKEN).json() == []
        first = runs.start_run(wh, ["2024-01"], "synthetic")
        runs.start_stage(wh, first, "ingest")
        runs.finish_stage(wh, first, "ingest", "failed", attempts=3, error="download failed")
        runs.finish_run(wh, first, "failed", error="ingest: download failed")
        second = runs.start_run(wh, ["2024-01", "2024-02"], "synthetic")
        for stage in ("ingest", "transform"):
            runs.start_stage(wh, second, stage)
            runs.finish_stage(wh, second, stage, "succeeded", rows_in=1000)
        runs.finish_run(wh, second, "succeeded", model_version="20240301T000000Z-abc")

        got = client.get("/v1/runs", headers=TOKEN).json()
        assert [(r["run_id"], r["status"]) for r in got] == [(second, "succeeded"), (first, "failed")]
        assert got[0]["months"] == ["2024-01", "2024-02"] and got[0]["model_version"] == "20240301T000000Z-abc"
        assert [(s["stage"], s["status"]) for s in got[0]["stages"]] == [
            ("ingest", "succeeded"),
            ("transform", "succeeded"),
        ]
        assert got[1]["error"] == "ingest: download failed" and got[1]["stages"][0]["attempts"] == 3
        assert [r["run_id"] for r in client.get("/v1/runs", params={"limit": 1}, headers=TOKEN).json()] == [second]


@pytest.fixture
def own_embedded_server(tlc_samples) -> Iterator[Settings]:
    """A private embedded PostgreSQL (so stopping it disturbs no one) and a registry with one model."""
    data_dir = REPO_ROOT / ".data" / f"test-api-down-{uuid.uuid4().hex[:8]}"
    settings = Settings(database_url=None, data_dir=data_dir, db_name="fares_api", admin_token=ADMIN_TOKEN)
    registry_copy(tlc_samples, data_dir / "models")
    try:
        yield settings
    finally:
        stop_embedded(settings)
        shutil.rmtree(data_dir, ignore_errors=True)


def test_quotes_keep_working_when_the_database_goes_down(own_embedded_server: Settings) -> None:
    settings = own_embedded_server
    get_warehouse(settings)  # start it, create the database
    app = create_app(settings, poll_seconds=0)
    app.state.db.ttl = 0  # check on every /health call
    with TestClient(app) as client:
        assert client.get("/health").json()["database_reachable"] is True
        assert client.get("/v1/runs", headers=TOKEN).json() == []
        assert stop_embedded(settings)

        health = client.get("/health")
        assert health.status_code == 200
        body = health.json()
        assert body["status"] == "degraded" and body["model_loaded"] and not body["database_reachable"]
        assert "database unreachable" in body["database_error"]
        quote = client.post("/v1/quotes", json=TRIP)
        assert quote.status_code == 200 and quote.json()["cheaper"] in ("taxi", "uber")
        runs = client.get("/v1/runs", headers=TOKEN)
        assert runs.status_code == 503 and "database unreachable" in runs.json()["detail"]
        assert client.get("/v1/zones", params={"q": "JFK"}).json()[0]["zone_id"] == 132


def test_an_unreachable_database_url_is_reported_not_raised(tlc_samples, tmp_path: Path) -> None:
    registry_copy(tlc_samples, tmp_path / "models")
    settings = Settings(
        database_url="postgresql://postgres@127.0.0.1:9/nowhere", data_dir=tmp_path, admin_token=ADMIN_TOKEN
    )
    with TestClient(create_app(settings, poll_seconds=0)) as client:
        body = client.get("/health").json()
        assert body["status"] == "degraded" and "127.0.0.1:9" in body["database_error"]
        assert client.post("/v1/quotes", json=TRIP).status_code == 200
        assert client.get("/v1/runs", headers=TOKEN).status_code == 503
