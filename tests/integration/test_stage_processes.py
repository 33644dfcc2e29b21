"""Operators can trust it: stages in their own processes that a timeout or a cancel really stops, exact redo of
crashed runs, one lock that writers wait for in line (real PostgreSQL, real processes, a real alert receiver)."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from test_scheduler_chain import MONTHS, probe_stages

from fares import scheduler
from fares.chain import pipeline
from fares.chain.executor import RunContext, StageResult
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.ops import locks, runs
from fares.ops.runs import RunRecord

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(fresh_db: Warehouse, tmp_path: Path) -> Settings:
    """Quick retries and a short grace period, so a stopped stage is killed within seconds."""
    from conftest import settings_for

    return settings_for(fresh_db, tmp_path / "data", months=MONTHS, stage_backoff_seconds=0.05, stage_grace_seconds=3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stage_pid(wh: Warehouse, run_id: int, stage: str) -> int:
    [found] = [s.pid for s in runs.get_run(wh, run_id).stages if s.stage == stage]
    assert found is not None, f"the {stage} stage recorded no process"
    return found


def _sessions_of(wh: Warehouse, run_id: int) -> list[tuple]:
    with wh.connect() as conn:
        return conn.execute(
            "select pid, application_name, state, query from pg_stat_activity where application_name like %s",
            (f"fares:run{run_id}:%",),
        ).fetchall()


def _lock_is_free(wh: Warehouse) -> bool:
    with locks.try_lock(wh, locks.RUN_LOCK) as got:
        return got


def _blocked_on_a_table_lock(ctx: RunContext) -> StageResult:
    with ctx.wh.connect() as conn:  # waits for the lock another session holds: a query that never returns
        conn.execute("select count(*) from public.held_by_someone_else")
    return StageResult()


def _never_returns(ctx: RunContext) -> StageResult:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # deaf to SIGTERM, like a stuck native loop
    while True:
        time.sleep(0.2)


def test_a_stage_blocked_on_a_table_lock_times_out_and_leaves_nothing_behind(
    settings: Settings, fresh_db: Warehouse
) -> None:
    from alert_receiver import alert_receiver

    with fresh_db.connect(autocommit=True) as setup:
        setup.execute("create table public.held_by_someone_else (x int)")
    holder = fresh_db.connect()
    holder.execute("lock table public.held_by_someone_else in access exclusive mode")  # held until rollback
    try:
        with alert_receiver() as receiver:
            s = settings.model_copy(update={"stage_timeouts": {"transform": 2.0}, "alert_urls": [receiver.url]})
            row = pipeline.run_once(s, stages={**probe_stages(), "transform": _blocked_on_a_table_lock})
            titles = receiver.wait_for(1)
            time.sleep(1)  # a second alert, were one sent, would have arrived by now
            assert receiver.titles() == titles
        assert row.status == "timed_out"
        assert [(st.stage, st.status) for st in row.stages] == [("ingest", "succeeded"), ("transform", "timed_out")]
        assert titles == [f"fares: run {row.run_id} timed out at transform"]
        assert not _alive(_stage_pid(fresh_db, row.run_id, "transform")), "the stage's process outlived the run"
        assert _sessions_of(fresh_db, row.run_id) == [], "a query of the run is still in pg_stat_activity"
        assert _lock_is_free(fresh_db)
    finally:
        holder.rollback()
        holder.close()
    assert pipeline.run_once(settings, stages=probe_stages()).status == "succeeded"


def test_a_training_stage_that_never_returns_is_killed_after_the_grace(settings: Settings, fresh_db: Warehouse) -> None:
    s = settings.model_copy(update={"stage_timeouts": {"train": 1.0}})
    row = pipeline.run_once(s, stages={**probe_stages(), "train": _never_returns})
    assert row.status == "timed_out"
    assert [(st.stage, st.status) for st in row.stages][-1] == ("train", "timed_out")
    assert not _alive(_stage_pid(fresh_db, row.run_id, "train")), "SIGKILL after the grace did not come"
    assert _lock_is_free(fresh_db)
    assert pipeline.run_once(settings, stages=probe_stages()).status == "succeeded"


def test_a_cancelled_run_stops_is_recorded_cancelled_and_is_never_redone(
    settings: Settings, fresh_db: Warehouse
) -> None:
    got: dict[str, RunRecord] = {}
    worker = threading.Thread(
        target=lambda: got.update(run=pipeline.run_once(settings, stages=probe_stages(sleep={"transform": 120})))
    )
    worker.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        running = [r for r in runs.list_runs(fresh_db) if r.status == "running"]
        if running and any(st.stage == "transform" and st.pid for st in running[0].stages):
            break
        time.sleep(0.1)
    [run] = running
    asked = runs.request_cancel(fresh_db, run.run_id, "an operator")
    assert asked.status == "running" and asked.cancel_requested_by == "an operator"
    worker.join(30)
    assert not worker.is_alive(), "the cancelled run did not end"
    row = got["run"]
    assert row.status == "cancelled" and row.error is not None and "cancelled by an operator" in row.error
    assert [(st.stage, st.status) for st in row.stages] == [("ingest", "succeeded"), ("transform", "cancelled")]
    assert not _alive(_stage_pid(fresh_db, row.run_id, "transform"))
    assert _lock_is_free(fresh_db)
    assert runs.runs_to_redo(fresh_db, settings.redo_max_age_hours) == []
    assert scheduler.recover_runs(settings, probe_stages()) == []


def test_a_crashed_run_is_redone_once_from_its_unfinished_stage_if_young_enough(
    settings: Settings, fresh_db: Warehouse
) -> None:
    requested = list(pipeline.STAGES)
    crashed = runs.start_run(fresh_db, ["2023-12"], "/mirror", stages=requested)  # as a process killed mid-run
    runs.start_stage(fresh_db, crashed, "ingest")
    runs.finish_stage(fresh_db, crashed, "ingest", "succeeded")
    runs.start_stage(fresh_db, crashed, "transform")
    old = runs.start_run(fresh_db, ["2023-11"], "/mirror", stages=requested)
    with fresh_db.connect() as conn:
        conn.execute(
            "update ops.pipeline_runs set started_at = now() - interval '3 days', pid = 2147483000"
            " where run_id = any(%s)",
            ([crashed, old],),
        )
        conn.execute("update ops.pipeline_runs set started_at = now() where run_id = %s", (crashed,))
    redone = scheduler.recover_runs(settings, probe_stages())
    assert [(r.redo_of, r.months, r.source, r.status) for r in redone] == [
        (crashed, ["2023-12"], "/mirror", "succeeded")
    ]
    assert [st.stage for st in redone[0].stages] == requested[1:], "redone from its unfinished stage, transform"
    assert runs.get_run(fresh_db, old).status == "failed"  # marked crashed, but older than FARES_REDO_MAX_AGE_HOURS
    assert scheduler.recover_runs(settings, probe_stages()) == []  # once


def test_a_backfill_that_meets_a_scheduled_run_waits_in_line_and_both_succeed(
    settings: Settings, fresh_db: Warehouse, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    got: dict[str, RunRecord] = {}
    nightly = threading.Thread(
        target=lambda: got.update(nightly=pipeline.run_once(settings, stages=probe_stages(gate=gate), trigger="daemon"))
    )
    nightly.start()
    deadline = time.monotonic() + 30
    while not [r for r in runs.list_runs(fresh_db) if r.status == "running"] and time.monotonic() < deadline:
        time.sleep(0.05)
    backfill = threading.Thread(
        target=lambda: got.update(
            backfill=pipeline.run_once(
                settings, months=["2024-03"], stages=probe_stages(), trigger="backfill", params={"force": True}
            )
        )
    )
    backfill.start()
    time.sleep(2)
    assert backfill.is_alive(), "the backfill did not wait for the lock"
    assert [r.trigger for r in runs.list_runs(fresh_db)] == ["daemon"], "the waiting backfill recorded nothing yet"
    gate.touch()
    nightly.join(60)
    backfill.join(60)
    assert (got["nightly"].status, got["backfill"].status) == ("succeeded", "succeeded")
    finished = got["nightly"].finished_at
    assert finished is not None and got["backfill"].started_at >= finished  # in line, after it
    assert got["backfill"].months == ["2024-03"]


def test_writers_asked_not_to_wait_exit_75_and_are_recorded_skipped(
    settings: Settings, fresh_db: Warehouse, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`fares run`, `fares ingest` and `fares dbt` take the one pipeline lock; with --no-wait a held lock is exit
    status 75 and a `skipped` record, not a failure."""
    from fares.cli import main
    from fares.config.settings import get_settings

    monkeypatch.setenv("DATABASE_URL", settings.database_url or "")
    monkeypatch.setenv("FARES_DATA_DIR", str(settings.data_dir))

    def fares(*argv: str) -> tuple[int, str]:
        get_settings.cache_clear()
        try:
            code = main(list(argv))
        finally:
            get_settings.cache_clear()
        out = capsys.readouterr()
        return code, out.out + out.err

    with locks.try_lock(fresh_db, locks.RUN_LOCK) as got:
        assert got
        results = [
            fares("run", "--only", "publish", "--no-wait"),
            fares("ingest", "--source", str(settings.data_dir), "--no-wait"),
            fares("dbt", "--no-wait", "build", "--select", "dim_zones"),
        ]
    assert [code for code, _ in results] == [75, 75, 75], results
    assert all("another run holds the lock" in text for _, text in results), results
    recorded = runs.list_runs(fresh_db)
    assert [(r.status, r.stages_requested) for r in reversed(recorded)] == [
        ("skipped", ["publish"]),
        ("skipped", ["ingest"]),
        ("skipped", ["dbt build --select dim_zones"]),
    ]


def test_a_run_asked_through_the_api_while_a_daemon_beats_is_made_by_the_daemon(
    settings: Settings, fresh_db: Warehouse
) -> None:
    from datetime import UTC, datetime

    from fastapi.testclient import TestClient

    from fares.api.app import create_app
    from fares.ops.heartbeat import write_beat

    keyed = settings.model_copy(update={"admin_token": "s3cret"})
    write_beat(fresh_db, datetime.now(UTC), None)  # a daemon is alive on this database
    with TestClient(create_app(keyed, poll_seconds=0)) as client:
        asked = client.post(
            "/v1/admin/runs", json={"stages": ["ingest", "transform"]}, headers={"Authorization": "Bearer s3cret"}
        )
    assert asked.status_code == 202, asked.text
    body = asked.json()
    assert (body["status"], body["run_id"], body["stages"]) == ("queued", None, ["ingest", "transform"])
    assert runs.list_runs(fresh_db) == [], "the API's process made no run itself"
    assert runs.request_state(fresh_db, body["request_id"]) == (False, None)
    [made] = scheduler.take_run_requests(keyed, probe_stages())  # the daemon's job, in the daemon's process
    assert (made.status, made.trigger, [st.stage for st in made.stages]) == (
        "succeeded",
        "api",
        ["ingest", "transform"],
    )
    assert made.pid == os.getpid()
    assert runs.request_state(fresh_db, body["request_id"]) == (True, made.run_id)
    assert scheduler.take_run_requests(keyed, probe_stages()) == []  # taken once


def _session_facts(ctx: RunContext) -> StageResult:
    import psycopg2

    # a connection opened the way GX and dlt open theirs: a URL, without fares' own conninfo options
    conn = psycopg2.connect(ctx.wh.url())
    try:
        with conn.cursor() as cur:
            cur.execute("select current_setting('statement_timeout'), current_setting('application_name')")
            facts = cur.fetchone()
    finally:
        conn.close()
    return StageResult(facts)


def test_every_session_of_a_stage_is_named_for_its_run_and_has_the_statement_timeout(
    settings: Settings, fresh_db: Warehouse
) -> None:
    s = settings.model_copy(update={"statement_timeout_seconds": 1234})
    row, results = pipeline.run_job(s, pipeline.Run(stages={"transform": _session_facts}))
    assert row.status == "succeeded"
    assert results["transform"].value == ("1234s", f"fares:run{row.run_id}:transform")
