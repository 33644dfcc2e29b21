"""Model life cycle in a running app: no model, hot reload under load, broken versions, admin token, demo_once, CORS."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from api_kit import make_training_frame, real_zones, registry_copy, save_model
from fastapi.testclient import TestClient

from fares.api.app import create_app
from fares.config.settings import Settings

# The real TLC zone shapes (../shared) and a fitted model, served in-process or by uvicorn.
pytestmark = pytest.mark.integration

UNREACHABLE_DB = "postgresql://postgres@127.0.0.1:9/none"
TRIP = {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}


@pytest.fixture(scope="module")
def two_versions(tlc_samples, tmp_path_factory) -> tuple[Path, str, str]:
    """A registry with v1 (current) and v2 (saved, not promoted), both real fitted models."""
    models_dir, v1 = registry_copy(tlc_samples, tmp_path_factory.mktemp("admin") / "models")
    zones = real_zones(tlc_samples)
    v2 = save_model(models_dir, make_training_frame(zones, rows_per_service=1200, seed=11), zones)
    assert v1 != v2
    return models_dir, v1, v2


def _settings(models_dir: Path, **extra: Any) -> Settings:
    return Settings(data_dir=models_dir.parent, database_url=UNREACHABLE_DB, **extra)


def _promote(models_dir: Path, version: str) -> None:
    from fares.ml.registry import Registry

    Registry(models_dir).promote(version)


def _wait_for(check: Callable[[], bool], seconds: float = 30) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_no_model_yet_is_a_clear_503_until_one_is_promoted(two_versions, tmp_path) -> None:
    src, v1, _ = two_versions
    models_dir = tmp_path / "models"
    models_dir.mkdir()
    with TestClient(create_app(_settings(models_dir), poll_seconds=0.1)) as client:
        for r in (client.post("/v1/quotes", json=TRIP), client.get("/v1/zones"), client.get("/v1/model")):
            assert r.status_code == 503 and "no fare model is loaded yet" in r.json()["detail"], r.text
        import shutil

        shutil.copytree(src / v1, models_dir / v1)
        _promote(models_dir, v1)
        assert _wait_for(lambda: client.post("/v1/quotes", json=TRIP).status_code == 200)
        assert client.get("/v1/model").json()["model_version"] == v1


def test_a_promoted_version_is_served_without_restart_and_no_request_fails(two_versions) -> None:
    models_dir, v1, v2 = two_versions
    _promote(models_dir, v1)
    with TestClient(create_app(_settings(models_dir), poll_seconds=0.1)) as client:
        assert client.get("/v1/model").json()["model_version"] == v1
        seen: list[tuple[int, str | None]] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                r = client.post("/v1/quotes", json=TRIP)
                seen.append((r.status_code, r.json().get("model_version")))

        workers = [threading.Thread(target=hammer) for _ in range(3)]
        for w in workers:
            w.start()
        try:
            _wait_for(lambda: len(seen) > 20)
            _promote(models_dir, v2)
            assert _wait_for(lambda: any(v == v2 for _, v in seen[-5:]))
            mark = len(seen)
            _wait_for(lambda: len(seen) > mark + 20)
        finally:
            stop.set()
            for w in workers:
                w.join()
        assert {code for code, _ in seen} == {200}
        assert {v for _, v in seen} == {v1, v2}
        assert client.get("/v1/model").json()["model_version"] == v2


def test_a_broken_current_version_keeps_the_model_in_service(two_versions) -> None:
    models_dir, v1, _ = two_versions
    _promote(models_dir, v1)
    with TestClient(create_app(_settings(models_dir, admin_token="s3cret"), poll_seconds=0)) as client:
        (models_dir / "CURRENT").write_text("no-such-version\n")
        try:
            r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer s3cret"})
            assert r.status_code == 503 and "no-such-version" in r.json()["detail"]
            q = client.post("/v1/quotes", json=TRIP)
            assert q.status_code == 200 and q.json()["model_version"] == v1
        finally:
            _promote(models_dir, v1)


def test_admin_needs_the_token_and_is_off_without_one(two_versions) -> None:
    models_dir, v1, v2 = two_versions
    _promote(models_dir, v1)
    with TestClient(create_app(_settings(models_dir), poll_seconds=0)) as client:
        r = client.post("/v1/admin/reload", headers={"Authorization": "Bearer anything"})
        assert r.status_code == 403 and "FARES_ADMIN_TOKEN" in r.json()["detail"]
    with TestClient(create_app(_settings(models_dir, admin_token="s3cret"), poll_seconds=0)) as client:
        assert client.post("/v1/admin/reload").status_code == 401
        assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        good = {"Authorization": "Bearer s3cret"}
        assert client.post("/v1/admin/reload", headers=good).json() == {"model_version": v1, "changed": False}
        r = client.post("/v1/admin/promote/nope", headers=good)
        assert r.status_code == 404 and "not in the registry" in r.json()["detail"]
        assert client.post(f"/v1/admin/promote/{v2}").status_code == 401
        assert client.post(f"/v1/admin/promote/{v2}", headers=good).json() == {"model_version": v2, "changed": True}
        assert client.post("/v1/quotes", json=TRIP).json()["model_version"] == v2
        assert (models_dir / "CURRENT").read_text().strip() == v2


def test_a_server_app_freezes_its_heap_and_still_swaps_models(two_versions) -> None:
    import gc

    models_dir, v1, v2 = two_versions
    _promote(models_dir, v1)
    batch = {
        "columns": {
            "pickup_at": [TRIP["pickup_at"]] * 3,
            "pickup_zone_id": [132, 1, 230],
            "dropoff_zone_id": [230, 132, 230],
        }
    }
    try:
        app = create_app(_settings(models_dir, admin_token="s3cret"), poll_seconds=0, freeze_gc=True)
        with TestClient(app) as client:
            assert gc.get_freeze_count() > 0
            assert client.post("/v1/quotes", json=TRIP).json()["model_version"] == v1
            good = {"Authorization": "Bearer s3cret"}
            assert client.post(f"/v1/admin/promote/{v2}", headers=good).json() == {"model_version": v2, "changed": True}
            r = client.post("/v1/quotes/batch", json=batch)
            assert r.status_code == 200 and (r.json()["model_version"], r.json()["count"]) == (v2, 3)
    finally:
        gc.unfreeze()
        _promote(models_dir, v1)


def test_demo_once_fires_after_the_first_successful_quote_only(two_versions) -> None:
    models_dir, v1, _ = two_versions
    _promote(models_dir, v1)
    app = create_app(_settings(models_dir, demo_once=True), poll_seconds=0)
    calls: list[str] = []
    app.state.on_first_quote = lambda: calls.append("stop")
    with TestClient(app) as client:
        assert client.post("/v1/quotes", json={**TRIP, "pickup": {"zone_id": 999}}).status_code == 422
        assert calls == []
        assert client.post("/v1/quotes", json=TRIP).status_code == 200
        assert client.post("/v1/quotes", json=TRIP).status_code == 200
    assert calls == ["stop"]


def test_cors_is_off_by_default_and_follows_settings(two_versions) -> None:
    models_dir, _, _ = two_versions
    preflight = {"Origin": "http://maps.example", "Access-Control-Request-Method": "POST"}
    with TestClient(create_app(_settings(models_dir), poll_seconds=0)) as client:
        assert "access-control-allow-origin" not in client.options("/v1/quotes", headers=preflight).headers
    with TestClient(create_app(_settings(models_dir, cors_origins=["http://maps.example"]), poll_seconds=0)) as client:
        r = client.options("/v1/quotes", headers=preflight)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://maps.example"
        other = client.options("/v1/quotes", headers={**preflight, "Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
