"""The runs dashboard in headless Chromium: an operator logs in, finds the failed run and reads why it failed."""

from __future__ import annotations

from pathlib import Path

import pytest
from api_kit import free_port, running_server
from test_web_page import ARTIFACTS, browser  # noqa: F401 - the headless Chromium fixture

from fares.chain import pipeline
from fares.chain.executor import RunContext, StageResult
from fares.config.warehouse import Warehouse

pytestmark = pytest.mark.e2e
DBT_ERROR = (
    "dbt build failed (exit 1)\nFailure in test not_null_fct_trips_trip_id: Got 3 results, configured to fail if != 0"
)


def _ingest(ctx: RunContext) -> StageResult:
    return StageResult(rows_out=4_200)


def _transform(ctx: RunContext) -> StageResult:
    raise RuntimeError(DBT_ERROR)


def test_the_dashboard_shows_a_failed_runs_error(browser, fresh_db: Warehouse, tmp_path: Path) -> None:  # noqa: F811 - the imported fixture
    from conftest import settings_for
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings = settings_for(fresh_db, tmp_path / "data", stage_retries=0, admin_token="s3cret")
    row = pipeline.run_once(settings, months=["2024-01"], stages={"ingest": _ingest, "transform": _transform})
    assert row.status == "failed"
    port = free_port()
    with running_server(settings, port):
        browser.delete_all_cookies()
        browser.get(f"http://127.0.0.1:{port}/runs")  # an operator's bookmark: the login form first
        wait = WebDriverWait(browser, 20)
        token = wait.until(ec.visibility_of_element_located(("id", "token")))
        assert "needs the admin token" in browser.find_element("id", "login-message").text
        token.send_keys("wrong")
        token.submit()
        wait.until(ec.text_to_be_present_in_element(("id", "login-message"), "That is not the admin token."))
        browser.find_element("id", "token").send_keys("s3cret")
        browser.find_element("id", "token").submit()
        wait.until(ec.visibility_of_element_located(("id", "runs")))
        listed = browser.find_element("css selector", "tr.run.failed td.error").text
        assert listed == "transform failed: RuntimeError: dbt build failed (exit 1)"
        browser.find_element("link text", str(row.run_id)).click()
        error = wait.until(ec.visibility_of_element_located(("id", "run-error")))
        assert "Failure in test not_null_fct_trips_trip_id: Got 3 results" in error.text
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "runs_page_failed_run.png"
        browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
