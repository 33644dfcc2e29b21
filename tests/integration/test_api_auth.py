"""Ops behind a key: the ops pages and admin routes need the admin token (header or login cookie); quotes stay open."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_kit import registry_copy
from fastapi.testclient import TestClient

from fares.api.app import create_app
from fares.api.deps import COOKIE_NAME
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse

pytestmark = pytest.mark.integration

TOKEN = "s3cret"
TRIP = {"pickup_at": "2024-02-14T08:30:00", "pickup": {"zone_id": 132}, "dropoff": {"zone_id": 230}}
# Every ops page (GET), each answering 200 once the key is given (run 1, a report and both docs sites exist below).
OPS_PAGES = [
    "/runs",
    "/runs/1",
    "/runs/1/log",
    "/runs/1/dbt",
    "/v1/runs",
    "/v1/runs/1",
    "/reports/{version}",
    "/data-docs/",
    "/dbt-docs/",
    "/metrics",
]
OPEN = ["/health", "/v1/zones?q=JFK", "/v1/zones/map", "/v1/model", "/", "/static/app.js", "/docs", "/openapi.json"]


@pytest.fixture(scope="module")
def ops_world(
    pg_server: Warehouse, tlc_samples: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    """A database with run 1 (its log and dbt results), a model with its report, and both docs sites built."""
    from conftest import drop_database, make_database, settings_for
    from test_scheduler_chain import probe_stages

    from fares.chain import pipeline

    data = tmp_path_factory.mktemp("auth") / "data"
    _, version = registry_copy(tlc_samples, data / "models")
    wh = make_database(pg_server, "auth")
    settings = settings_for(wh, data, admin_token=TOKEN, stage_retries=0)
    row = pipeline.run_once(settings, stages={"ingest": probe_stages()["ingest"]})  # the model stays as it is
    assert row.run_id == 1 and row.status == "succeeded"
    (settings.run_dir(1) / "run_results.json").write_text('{"results": []}')
    from fares.ml.registry import Registry

    report = Registry(settings.models_dir).report_path(version)
    if not report.is_file():  # the test registry's model was saved without one
        report.write_text("<title>report</title>")
    for site in (data / "gx" / "data_docs", data / "dbt" / "target"):
        site.mkdir(parents=True, exist_ok=True)
        (site / "index.html").write_text("<title>docs</title>")
    yield {"settings": settings, "version": version}
    drop_database(pg_server, wh.dbname)


def _client(ops_world: dict[str, Any], **changes: Any) -> TestClient:
    settings: Settings = ops_world["settings"].model_copy(update=changes)
    return TestClient(create_app(settings, poll_seconds=0))


def _pages(ops_world: dict[str, Any]) -> list[str]:
    return [page.format(version=ops_world["version"]) for page in OPS_PAGES]


def test_ops_pages_need_the_token_and_open_with_it(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        for page in _pages(ops_world):
            missing = client.get(page)
            assert missing.status_code == 401, page
            assert missing.json()["detail"].startswith("a valid admin token is required"), page
            assert missing.headers["www-authenticate"] == "Bearer"
            assert client.get(page, headers={"Authorization": "Bearer wrong"}).status_code == 401, page
            assert client.get(page, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200, page


def test_admin_routes_need_the_token(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        assert client.post("/v1/admin/reload").status_code == 401
        assert client.post("/v1/admin/reload", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post("/v1/admin/reload", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_quote_routes_and_the_page_stay_open(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        for path in OPEN:
            assert client.get(path).status_code == 200, path
        assert client.post("/v1/quotes", json=TRIP).status_code == 200
        assert client.post("/v1/quotes/batch", json={"trips": [TRIP]}).status_code == 200
        page = client.get("/").text
        for ops in ("/runs", "/data-docs", "/dbt-docs", "/metrics"):
            assert f'href="{ops}' not in page


def test_without_a_configured_token_ops_pages_say_how_to_open_them(ops_world: dict[str, Any]) -> None:
    with _client(ops_world, admin_token=None) as client:
        for page in _pages(ops_world):
            closed = client.get(page, headers={"Authorization": f"Bearer {TOKEN}"})
            assert closed.status_code == 403, page
            assert "set FARES_ADMIN_TOKEN" in closed.json()["detail"], page
        assert client.post("/v1/admin/reload").status_code == 403
        form = client.get("/login")
        assert form.status_code == 403 and "set FARES_ADMIN_TOKEN" in form.text and "<form" not in form.text
        page = client.get("/runs", headers={"Accept": "text/html"})  # a browser: the sentence, and no form to fill
        assert page.status_code == 403 and "set FARES_ADMIN_TOKEN" in page.text and "<form" not in page.text


def test_ops_public_opens_the_ops_pages_but_not_the_admin_routes(ops_world: dict[str, Any]) -> None:
    with _client(ops_world, ops_public=True) as client:
        for page in _pages(ops_world):
            assert client.get(page).status_code == 200, page
        assert client.post("/v1/admin/reload").status_code == 401
    with _client(ops_world, ops_public=True, admin_token=None) as client:
        assert client.get("/runs").status_code == 200
        assert client.post("/v1/admin/reload").status_code == 403


def test_the_login_form_sets_a_strict_httponly_cookie_that_opens_the_runs(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        browser = {"Accept": "text/html,application/xhtml+xml"}
        bounced = client.get("/runs/1", headers=browser)
        assert bounced.status_code == 401
        assert 'name="next" value="/runs/1"' in bounced.text and 'name="token" type="password"' in bounced.text
        wrong = client.post("/login", data={"token": "wrong", "next": "/runs/1"}, follow_redirects=False)
        assert wrong.status_code == 401 and "That is not the admin token." in wrong.text
        assert COOKIE_NAME not in client.cookies
        right = client.post("/login", data={"token": TOKEN, "next": "/runs/1"}, follow_redirects=False)
        assert (right.status_code, right.headers["location"]) == (303, "/runs/1")
        cookie = right.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE_NAME}=") and "HttpOnly" in cookie and "SameSite=strict" in cookie
        assert TOKEN not in cookie  # a keyed hash of the token, not the token
        runs = client.get("/runs")
        assert runs.status_code == 200 and 'href="/runs/1"' in runs.text
        assert client.get("/v1/runs").status_code == 200
        client.get("/logout")
        assert client.get("/runs").status_code == 401


def test_login_goes_back_only_to_this_server(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        for target in ("https://evil.example/", "//evil.example/runs", "/\\evil.example"):
            answer = client.post("/login", data={"token": TOKEN, "next": target}, follow_redirects=False)
            assert answer.headers["location"] == "/runs", target


def test_the_openapi_document_shows_the_key_on_the_guarded_routes(ops_world: dict[str, Any]) -> None:
    with _client(ops_world) as client:
        spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["AdminToken"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "FARES_ADMIN_TOKEN, as `Authorization: Bearer <token>`",
    }
    assert schemes["AdminCookie"]["in"] == "cookie"
    guarded: tuple[dict[str, list[str]], ...] = ({"AdminToken": []}, {"AdminCookie": []})
    for path, method in [("/v1/runs", "get"), ("/v1/runs/{run_id}", "get"), ("/v1/admin/reload", "post")]:
        operation = spec["paths"][path][method]
        assert tuple(operation["security"]) == guarded, path
        assert {"401", "403"} <= set(operation["responses"]), path
    for path, method in [("/v1/quotes", "post"), ("/v1/zones", "get"), ("/health", "get"), ("/v1/model", "get")]:
        assert "security" not in spec["paths"][path][method], path
