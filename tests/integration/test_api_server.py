"""`api.server`: uvicorn on 127.0.0.1 serving the app; with demo_once it exits by itself after the first quote."""

from __future__ import annotations

import httpx
import pytest
from api_kit import free_port, registry_copy, running_server

from fares.config.settings import Settings

# The real TLC zone shapes (../shared) and a fitted model, served in-process or by uvicorn.
pytestmark = pytest.mark.integration

TRIP = {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}


def test_demo_once_server_answers_one_quote_then_stops(tlc_samples, tmp_path) -> None:
    _models_dir, version = registry_copy(tlc_samples, tmp_path / "models")
    settings = Settings(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:9/none", demo_once=True)
    port = free_port()
    with running_server(settings, port) as thread:
        base = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{base}/", timeout=5).status_code == 200
        assert httpx.post(f"{base}/v1/quotes", json={**TRIP, "pickup": {"zone_id": 0}}, timeout=5).status_code == 422
        r = httpx.post(f"{base}/v1/quotes", json=TRIP, timeout=5)
        assert r.status_code == 200 and r.json()["model_version"] == version
        thread.join(timeout=30)
        assert not thread.is_alive(), "the demo_once server did not exit after the first quote"


def test_a_normal_server_keeps_serving_after_quotes(tlc_samples, tmp_path) -> None:
    registry_copy(tlc_samples, tmp_path / "models")
    settings = Settings(data_dir=tmp_path, database_url="postgresql://postgres@127.0.0.1:9/none")
    port = free_port()
    with running_server(settings, port) as thread:
        for _ in range(3):
            assert httpx.post(f"http://127.0.0.1:{port}/v1/quotes", json=TRIP, timeout=5).status_code == 200
        thread.join(timeout=1)
        assert thread.is_alive()
