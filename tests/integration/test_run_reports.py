"""What a run keeps beside its stages, on a real PostgreSQL with real dbt and Great Expectations: `dbt source
freshness` after the transform (thresholds from the TLC's publication delay) and the GX Data Docs rebuilt after the
gate, both linked from the run's page."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fares.api.app import create_app
from fares.chain import pipeline
from fares.chain.stages import DEFAULT_STAGES, select_stages
from fares.config.warehouse import Warehouse
from fares.ops.render import format_run_detail
from tests.conftest import embedded_server_only

pytestmark = pytest.mark.integration

MONTHS = ["2024-01", "2024-02"]
TRIP_SOURCES = ("tlc.fhvhv_trips", "tlc.yellow_trips")
TOKEN = {"Authorization": "Bearer s3cret"}  # the run pages are ops pages (fares.api.deps)


def _freshness_rows(page: str) -> dict[str, str]:
    """source -> status, as the run's page shows them."""
    import re

    section = page.split("<h2>Source freshness</h2>", 1)[1].split("<h2>", 1)[0]
    return dict(re.findall(r"<tr><td>([a-z_.]+)</td><td><span[^>]*>([a-z ]+)</span></td>", section))


@embedded_server_only
def test_a_run_checks_source_freshness_and_rebuilds_the_data_docs_both_on_its_page(
    fresh_db: Warehouse, tmp_path: Path
) -> None:
    from conftest import settings_for

    from fares.ingestion.synthetic import write_mirror

    write_mirror(tmp_path / "mirror", MONTHS, rows_per_month=4_000)
    settings = settings_for(fresh_db, tmp_path / "data", stage_backoff_seconds=0.05)
    docs = settings.gx_dir / "data_docs" / "index.html"
    assert not docs.exists()
    stages = select_stages(DEFAULT_STAGES, only=["ingest", "transform", "validate"])
    run = pipeline.run_once(settings, str(tmp_path / "mirror"), MONTHS, stages=stages)
    assert run.status == "succeeded", run.error
    assert docs.is_file() and docs.stat().st_mtime >= run.started_at.timestamp() - 1

    keyed = settings.model_copy(update={"admin_token": "s3cret"})
    with TestClient(create_app(keyed, poll_seconds=0)) as client:
        page = client.get(f"/runs/{run.run_id}", headers=TOKEN).text
        sources = client.get(f"/runs/{run.run_id}/freshness", headers=TOKEN).json()
        site = client.get("/data-docs/index.html", headers=TOKEN)
    shown = _freshness_rows(page)
    assert {s: shown.get(s) for s in TRIP_SOURCES} == dict.fromkeys(TRIP_SOURCES, "pass")
    assert f'<a href="/runs/{run.run_id}/freshness">source freshness</a>' in page
    assert '<a href="/data-docs/">Data Docs</a>' in page
    by_id = {r["unique_id"]: r for r in sources["results"]}
    assert by_id["source.fares.tlc.yellow_trips"]["criteria"]["warn_after"] == {"count": 45, "period": "day"}
    assert by_id["source.fares.tlc.yellow_trips"]["criteria"]["error_after"] == {"count": 100, "period": "day"}
    assert site.status_code == 200 and "validation" in site.text.lower()
    detail = format_run_detail(run, settings.run_dir(run.run_id), [])
    assert "source freshness: " in detail and "tlc.yellow_trips pass" in detail

    # Rows loaded 60 days ago: past the 45-day warning, short of the 100-day error; the run still succeeds.
    sixty_days_ago = str(int(time.time() - 60 * 86_400))
    with fresh_db.connect() as conn:
        conn.execute("update raw.yellow_trips set _dlt_load_id = %s", (sixty_days_ago,))
    later = pipeline.run_once(settings, stages=select_stages(DEFAULT_STAGES, only=["transform"]))
    assert later.status == "succeeded", later.error
    keyed = settings.model_copy(update={"admin_token": "s3cret"})
    with TestClient(create_app(keyed, poll_seconds=0)) as client:
        shown = _freshness_rows(client.get(f"/runs/{later.run_id}", headers=TOKEN).text)
    assert (shown["tlc.yellow_trips"], shown["tlc.fhvhv_trips"]) == ("warn", "pass")
