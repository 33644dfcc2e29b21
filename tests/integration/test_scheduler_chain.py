"""The recorded chain on a real PostgreSQL, with probe stages that do real work (rows, files, sleeps, errors).

This module also holds the probe stages the daemon tests run in a real subprocess: `python test_scheduler_chain.py`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from fares import scheduler
from fares.chain import pipeline
from fares.chain.executor import RunContext, StageFn, StageResult
from fares.chain.stages import PublishOutcome
from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, WarehouseError, scalar
from fares.ops import runs, schema
from fares.ops.runs import RunRecord

pytestmark = pytest.mark.integration

MONTHS = ["2024-01", "2024-02"]
_PROBE_DDL = """create table if not exists public.scheduler_probe (
    run_id bigint, stage text, pid integer, started_at timestamptz, finished_at timestamptz)"""


def probe_stages(
    sleep: dict[str, float] | None = None,
    fail: str | None = None,
    transient: dict[str, int] | None = None,
    gate: Path | None = None,
) -> dict[str, StageFn]:
    """Five stages that log themselves in public.scheduler_probe; train writes a bundle, publish moves CURRENT.

    sleep: seconds per stage; fail: the stage that raises a data error; transient: the stage and how many times it
    raises WarehouseError first (each stage attempt runs in its own process: attempts are counted in the probe table);
    gate: the ingest stage waits until this file exists.
    """
    sleep, transient = sleep or {}, dict(transient or {})

    def make(name: str) -> StageFn:
        def stage(ctx: RunContext) -> StageResult:
            with ctx.wh.connect(autocommit=True) as conn:
                conn.execute(_PROBE_DDL)
                conn.execute(
                    "insert into public.scheduler_probe values (%s, %s, %s, clock_timestamp(), null)",
                    (ctx.run_id, name, os.getpid()),
                )
                attempt = conn.execute(
                    "select count(*) from public.scheduler_probe where run_id = %s and stage = %s", (ctx.run_id, name)
                ).fetchone()
            if attempt is not None and attempt[0] <= transient.get(name, 0):
                raise WarehouseError("cannot connect to PostgreSQL: server closed the connection unexpectedly")
            if gate is not None and name == "ingest":
                deadline = time.monotonic() + 30
                while not gate.exists() and time.monotonic() < deadline:
                    time.sleep(0.05)
            time.sleep(sleep.get(name, 0))
            if name == fail:
                raise ValueError(f"{name}: 3 rows have a negative fare")
            with ctx.wh.connect(autocommit=True) as conn:
                conn.execute(
                    "update public.scheduler_probe set finished_at = clock_timestamp() "
                    "where run_id = %s and stage = %s",
                    (ctx.run_id, name),
                )
            return _stage_output(ctx, name)

        return stage

    return {name: make(name) for name in pipeline.STAGES}


def _stage_output(ctx: RunContext, name: str) -> StageResult:
    models = ctx.settings.models_dir
    if name == "train":
        (models / f"v{ctx.run_id}").mkdir(parents=True, exist_ok=True)
        (models / f"v{ctx.run_id}" / "model.txt").write_text(f"months {ctx.months}\n")
    if name == "publish":
        tmp = models / "CURRENT.tmp"
        tmp.write_text(f"v{ctx.run_id}\n")
        tmp.replace(models / "CURRENT")
        return StageResult(PublishOutcome(model_version=f"v{ctx.run_id}", published=True))
    return {"ingest": StageResult(rows_out=100), "transform": StageResult(rows_in=100, rows_out=80)}.get(
        name, StageResult()
    )


def probe_rows(wh: Warehouse) -> list[tuple]:
    """(run_id, stage, pid, started_at, finished_at) of every probe stage, in start order."""
    with wh.connect() as conn:
        if not scalar(conn, "select to_regclass('public.scheduler_probe')"):
            return []
        return conn.execute("select * from public.scheduler_probe order by started_at").fetchall()


@pytest.fixture
def settings(fresh_db: Warehouse, tmp_path: Path) -> Settings:
    """Settings on an empty database, quick retries, two months."""
    from conftest import settings_for

    return settings_for(fresh_db, tmp_path / "data", months=MONTHS, stage_retries=2, stage_backoff_seconds=0.05)


def test_a_run_records_the_run_and_every_stage(settings: Settings, fresh_db: Warehouse) -> None:
    row = pipeline.run_once(settings, stages=probe_stages())
    assert row.status == "succeeded", row
    assert [(s.stage, s.status, s.attempts) for s in row.stages] == [(name, "succeeded", 1) for name in pipeline.STAGES]
    assert (row.months, row.rows_in, row.rows_out) == (MONTHS, 100, 80)
    assert row.model_version == f"v{row.run_id}"
    assert row.finished_at is not None and row.finished_at >= row.started_at
    assert (settings.models_dir / "CURRENT").read_text().strip() == row.model_version
    listed = runs.list_runs(fresh_db)
    assert [r.run_id for r in listed] == [row.run_id]
    with fresh_db.connect() as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "select column_name from information_schema.columns"
                " where table_schema = 'ops' and table_name = 'pipeline_runs'"
            )
        }
    assert set(listed[0].to_dict()) == {*columns, "stages"} and listed[0].pid == os.getpid()  # every column read


def test_list_runs_is_empty_before_the_first_run(settings: Settings, fresh_db: Warehouse) -> None:
    assert runs.list_runs(fresh_db) == []


def test_a_failing_stage_stops_the_chain_and_keeps_the_current_model(settings: Settings, fresh_db: Warehouse) -> None:
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "CURRENT").write_text("v-previous\n")
    row = pipeline.run_once(settings, stages=probe_stages(fail="validate"))
    assert row.status == "failed"
    assert row.error is not None and "validate failed: ValueError: validate: 3 rows have a negative fare" in row.error
    assert [(s.stage, s.status, s.attempts) for s in row.stages] == [
        ("ingest", "succeeded", 1),
        ("transform", "succeeded", 1),
        ("validate", "failed", 1),
    ]
    assert {r[1] for r in probe_rows(fresh_db)} == {"ingest", "transform", "validate"}
    assert (settings.models_dir / "CURRENT").read_text() == "v-previous\n"
    assert row.model_version is None


def test_a_transient_error_is_retried_and_a_lasting_one_fails(settings: Settings) -> None:
    row = pipeline.run_once(settings, stages=probe_stages(transient={"transform": 2}))
    assert row.status == "succeeded", row.error
    assert {s.stage: s.attempts for s in row.stages}["transform"] == 3
    row = pipeline.run_once(settings, stages=probe_stages(transient={"ingest": 5}))
    assert row.status == "failed" and row.error is not None and "server closed the connection" in row.error
    assert [(s.stage, s.attempts) for s in row.stages] == [("ingest", 3)]


def test_a_run_while_another_holds_the_lock_is_recorded_skipped(
    settings: Settings, fresh_db: Warehouse, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    got: dict[str, RunRecord] = {}
    worker = threading.Thread(
        target=lambda: got.update(first=pipeline.run_once(settings, stages=probe_stages(gate=gate)))
    )
    worker.start()
    try:
        deadline = time.monotonic() + 20
        while not probe_rows(fresh_db) and time.monotonic() < deadline:
            time.sleep(0.05)
        second = pipeline.run_once(settings, stages=probe_stages(), wait=False)
    finally:
        gate.touch()
        worker.join(30)
    first = got["first"]
    running_id = first.run_id
    assert second.status == "skipped" and second.stages == []
    assert second.error == f"skipped: another run holds the lock (run {running_id}, pid {os.getpid()} on {first.host})"
    assert first.status == "succeeded"
    assert {r[0] for r in probe_rows(fresh_db)} == {running_id}


def test_a_run_left_running_by_a_dead_process_is_marked_failed_and_redone_once(
    settings: Settings, fresh_db: Warehouse
) -> None:
    schema.migrate(fresh_db)
    dead = runs.start_run(fresh_db, ["2023-12"], "/mirror", None)  # as a process killed mid-run leaves it
    redone = scheduler.recover_runs(settings, probe_stages())
    assert [(r.status, r.months, r.source) for r in redone] == [("succeeded", ["2023-12"], "/mirror")]
    old = runs.get_run(fresh_db, dead)
    assert old.status == "failed" and old.error is not None and old.error.startswith("crashed: the process (pid")
    assert scheduler.recover_runs(settings, probe_stages()) == []


def _daemon_main() -> None:
    """The daemon with probe stages; PROBE_SLEEP="stage:seconds,..." and PROBE_FAIL=stage shape them."""
    import logging

    from fares.config.settings import get_settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sleep = {k: float(v) for k, v in (p.split(":") for p in os.environ.get("PROBE_SLEEP", "").split(",") if p)}
    scheduler.start_daemon(get_settings(), stages=probe_stages(sleep=sleep, fail=os.environ.get("PROBE_FAIL")))


if __name__ == "__main__":
    _daemon_main()
