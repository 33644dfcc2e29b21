"""The operators' control room on a real PostgreSQL: timeouts, alerts at a real HTTP receiver, resume, fail-fast."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from alert_receiver import alert_receiver
from test_scheduler_chain import MONTHS, probe_rows, probe_stages

from fares.chain import pipeline
from fares.chain.executor import RunContext, StageResult
from fares.chain.stages import PublishOutcome, select_stages
from fares.config.settings import Settings
from fares.config.warehouse import DBT_PROJECT_DIR, Warehouse, get_warehouse
from fares.engines.transform import DbtTimeout, run_dbt
from fares.ops import alerts, locks, runs, schema

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(fresh_db: Warehouse, tmp_path: Path) -> Settings:
    """Settings on an empty database, quick retries, two months."""
    from conftest import settings_for

    return settings_for(fresh_db, tmp_path / "data", months=MONTHS, stage_retries=2, stage_backoff_seconds=0.05)


def test_a_hung_stage_times_out_is_recorded_and_releases_the_lock(settings: Settings, fresh_db: Warehouse) -> None:
    hung = settings.model_copy(update={"stage_timeouts": {"transform": 1.0}})
    row = pipeline.run_once(hung, stages=probe_stages(sleep={"transform": 30}))
    assert row.status == "timed_out"
    assert row.error == "transform timed out: transform timed out after 1 s"
    assert [(s.stage, s.status) for s in row.stages] == [("ingest", "succeeded"), ("transform", "timed_out")]
    with locks.try_lock(fresh_db, locks.RUN_LOCK) as got:
        assert got, "the run lock is still held after the timeout"
    assert pipeline.run_once(settings, stages=probe_stages()).status == "succeeded"


def test_the_run_timeout_cuts_the_stage_that_would_pass_it(settings: Settings) -> None:
    short = settings.model_copy(update={"run_timeout_seconds": 1.5})
    row = pipeline.run_once(short, stages=probe_stages(sleep={"ingest": 1.0, "transform": 30}))
    assert row.status == "timed_out"
    assert [s.status for s in row.stages] == ["succeeded", "timed_out"]


def test_a_dbt_past_its_timeout_is_killed(settings: Settings, fresh_db: Warehouse) -> None:
    with pytest.raises(DbtTimeout, match="dbt build timed out after 0 s and was stopped"):
        run_dbt(settings, fresh_db, ["build"], timeout=0.3)
    mine = f"dbt build --project-dir {DBT_PROJECT_DIR}"  # other checkouts on this machine may run dbt meanwhile
    left = subprocess.run(["pgrep", "-f", mine], capture_output=True, text=True, check=False)
    assert left.stdout.strip() == "", "dbt still runs after its timeout"


def test_statement_timeout_cancels_a_long_query(fresh_db: Warehouse, tmp_path: Path) -> None:
    import psycopg
    from conftest import settings_for

    wh = get_warehouse(settings_for(fresh_db, tmp_path, statement_timeout_seconds=0.2))
    with wh.connect() as conn, pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"):
        conn.execute("select pg_sleep(3)")
    assert "statement_timeout=200" in wh.dbt_env()["PGOPTIONS"]


def test_an_alert_arrives_once_per_failure_and_once_on_recovery(settings: Settings, fresh_db: Warehouse) -> None:
    with alert_receiver() as receiver:
        s = settings.model_copy(update={"alert_urls": [receiver.url]})
        first = pipeline.run_once(s, stages=probe_stages(fail="train"))
        second = pipeline.run_once(s, stages=probe_stages(fail="validate"))
        assert receiver.wait_for(2) == [
            f"fares: run {first.run_id} failed at train",
            f"fares: quality gate failed (run {second.run_id})",
        ]
        assert "3 rows have a negative fare" in receiver.messages[1]["message"]
        ok = pipeline.run_once(s, stages=probe_stages(transient={"transform": 1}))  # a retry that then succeeds
        assert ok.status == "succeeded" and ok.stages[1].attempts == 2
        pipeline.run_once(s, stages=probe_stages())
        titles = receiver.wait_for(4, timeout=3)
    assert titles[2:] == [f"fares: recovered (run {ok.run_id})"], titles
    assert receiver.messages[2]["type"] == "success" and "2 open alert(s) closed" in receiver.messages[2]["message"]


def test_no_success_for_too_long_alerts_once(settings: Settings, fresh_db: Warehouse) -> None:
    with alert_receiver() as receiver:
        s = settings.model_copy(update={"alert_urls": [receiver.url], "alert_stale_hours": 1 / 3600})
        pipeline.run_once(s, stages=probe_stages(fail="ingest"))
        import time

        time.sleep(1.2)
        assert alerts.check_stale(s, fresh_db) is True
        assert alerts.check_stale(s, fresh_db) is False
        titles = receiver.wait_for(2)
    assert len(titles) == 2 and titles[1].startswith("fares: no successful run for ")


def test_resume_from_validate_skips_ingest_and_transform(settings: Settings, fresh_db: Warehouse) -> None:
    row = pipeline.run_once(settings, stages=select_stages(probe_stages(), start="validate"))
    assert row.status == "succeeded"
    assert [s.stage for s in row.stages] == ["validate", "train", "publish"]
    assert row.stages_requested == ["validate", "train", "publish"]
    assert {r[1] for r in probe_rows(fresh_db)} == {"validate", "train", "publish"}
    only = pipeline.run_once(settings, stages=select_stages(probe_stages(), only=["transform"]))
    assert [s.stage for s in only.stages] == ["transform"]


def _refused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


@pytest.mark.parametrize("kind", ["refused", "unresolvable"])
def test_an_unreachable_source_fails_the_ingest_once_naming_the_source(settings: Settings, kind: str) -> None:
    source = f"http://127.0.0.1:{_refused_port()}" if kind == "refused" else "http://nonexistent.invalid"
    slow = settings.model_copy(update={"stage_retries": 3, "stage_backoff_seconds": 30, "http_retries": 4})
    row = pipeline.run_once(slow, source=source, stages=pipeline.stages_for(only=["ingest"]))
    [stage] = row.stages
    assert (row.status, stage.status, stage.attempts) == ("failed", "failed", 1)
    why = "the connection was refused" if kind == "refused" else "the host name does not resolve"
    assert row.error is not None and f"TLC source {source} is unreachable: {why}" in row.error
    assert row.error.count("unreachable") == 1


def test_a_crash_a_lock_held_too_long_and_a_model_kept_each_alert_once(settings: Settings, fresh_db: Warehouse) -> None:
    def kept(ctx: RunContext) -> StageResult:
        return StageResult(
            PublishOutcome(None, published=False, reason="holdout MAE $4.10 worse than current $3.90", retrained=True)
        )

    with alert_receiver() as receiver:
        s = settings.model_copy(update={"alert_urls": [receiver.url], "run_timeout_seconds": 3600})
        schema.migrate(fresh_db)
        dead = runs.start_run(fresh_db, ["2024-01"], "x")  # as a process killed mid-run leaves it
        with fresh_db.connect() as conn:
            conn.execute(
                "update ops.pipeline_runs set started_at = now() - interval '2 hours' where run_id = %s", (dead,)
            )
        with locks.try_lock(fresh_db, locks.RUN_LOCK):  # the dead run's process, as far as anyone can tell
            assert pipeline.run_once(s, stages=probe_stages(), wait=False).status == "skipped"
            assert pipeline.run_once(s, stages=probe_stages(), wait=False).status == "skipped"
        row = pipeline.run_once(s, stages={**probe_stages(), "publish": kept})
        titles = receiver.wait_for(4)
    assert titles == [
        f"fares: run {dead} holds the run lock for 2.0 h",
        f"fares: run {dead} crashed",
        f"fares: run {row.run_id} kept the current model",
        f"fares: recovered (run {row.run_id})",
    ]
    assert receiver.messages[2]["message"] == "holdout MAE $4.10 worse than current $3.90"
