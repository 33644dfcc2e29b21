"""The scheduler daemon as operators run it: real subprocesses on a real PostgreSQL, signals, kill -9, two daemons."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fares import scheduler
from fares.chain import pipeline
from fares.config.warehouse import Warehouse, scalar
from fares.ops import runs, schema
from fares.ops.runs import RunRecord

REPO_ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration

PROBE_SCRIPT = Path(__file__).with_name("test_scheduler_chain.py")
MONTHS = ["2024-01", "2024-02"]
EVERY_SECOND = "* * * * * *"  # six fields: seconds first
FAR_AWAY = "0 3 1 1 *"  # once a year: nothing scheduled fires during a test


class Daemons:
    """Start `python test_scheduler_chain.py` daemons on one database; kills what is left at the end."""

    def __init__(self, wh: Warehouse, tmp_path: Path) -> None:
        self.wh, self.tmp_path = wh, tmp_path
        self.procs: list[subprocess.Popen] = []
        schema.migrate(wh)  # the test reads ops before the first daemon has started (each daemon migrates too)

    def start(self, cron: str, **env: str) -> subprocess.Popen:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FARES_") and k != "DATABASE_URL"}
        base.update(
            DATABASE_URL=self.wh.url(),
            FARES_DATA_DIR=str(self.tmp_path / "data"),
            FARES_SCHEDULE_CRON=cron,
            FARES_SCHEDULE_TIMEZONE="UTC",
            FARES_MONTHS=json.dumps(MONTHS),
            FARES_STAGE_BACKOFF_SECONDS="0.1",
            **env,
        )
        log = open(self.tmp_path / f"daemon{len(self.procs)}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, str(PROBE_SCRIPT)],
            env=base,
            cwd=self.tmp_path,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs.append(proc)
        return proc

    def logs(self) -> str:
        return "\n".join(p.read_text()[-3000:] for p in sorted(self.tmp_path.glob("daemon*.log")))

    def wait_until(self, what: str, check: Callable[[], Any], timeout: float = 45) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = check()
            if value:
                return value
            time.sleep(0.2)
        pytest.fail(f"timed out waiting for {what}\n{self.logs()}")

    def stop(self, proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
        proc.send_signal(sig)
        try:
            return proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"daemon {proc.pid} did not stop on signal {sig}\n{self.logs()}")

    def cleanup(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)


@pytest.fixture
def daemons(fresh_db: Warehouse, tmp_path: Path) -> Iterator[Daemons]:
    """A daemon launcher on an empty database, its schema ops prepared (the tests read ops.* before a daemon has)."""
    schema.migrate(fresh_db)
    d = Daemons(fresh_db, tmp_path)
    yield d
    d.cleanup()


def _runs(wh: Warehouse, status: str | None = None) -> list[RunRecord]:
    return [r for r in runs.list_runs(wh, 100) if status is None or r.status == status]


def _stage_started(wh: Warehouse, stage: str) -> bool:
    from test_scheduler_chain import probe_rows

    return any(r[1] == stage for r in probe_rows(wh))


def test_the_daemon_runs_the_chain_on_its_schedule_and_records_it(daemons: Daemons, fresh_db: Warehouse) -> None:
    proc = daemons.start("*/2 * * * * *")
    done = daemons.wait_until("a scheduled run", lambda: _runs(fresh_db, "succeeded"))
    assert daemons.stop(proc) == 0
    row = runs.get_run(fresh_db, done[-1].run_id)
    assert (row.pid, row.months) == (proc.pid, MONTHS)
    assert [(s.stage, s.status) for s in row.stages] == [(s, "succeeded") for s in pipeline.STAGES]
    assert (daemons.tmp_path / "data" / "models" / "CURRENT").read_text().strip().startswith("v")
    with fresh_db.connect() as conn:
        assert conn.execute("select id from ops.apscheduler_jobs").fetchall() == [(scheduler.JOB_ID,)]
    assert {r.status for r in _runs(fresh_db)} <= {"succeeded", "interrupted"}


def test_two_daemons_on_one_database_never_run_the_chain_at_once(daemons: Daemons, fresh_db: Warehouse) -> None:
    from test_scheduler_chain import probe_rows

    procs = [daemons.start("*/2 * * * * *", PROBE_SLEEP="ingest:1.5") for _ in range(2)]
    daemons.wait_until("two runs", lambda: len(_runs(fresh_db, "succeeded")) >= 2, timeout=60)
    assert [daemons.stop(p) for p in procs] == [0, 0]
    spans: dict[int, list] = {}
    for run_id, _stage, _pid, started, finished in probe_rows(fresh_db):
        spans.setdefault(run_id, []).append((started, finished or datetime.max.replace(tzinfo=UTC)))
    ordered = sorted((min(s for s, _ in v), max(f for _, f in v)) for v in spans.values())
    overlaps = [(a, b) for a, b in itertools.pairwise(ordered) if b[0] < a[1]]
    assert overlaps == [], "two runs of the chain overlapped"
    assert {r.pid for r in _runs(fresh_db)} == {p.pid for p in procs}, "both daemons fire the shared job"
    for row in _runs(fresh_db, "skipped"):
        assert row.error is not None and row.error.startswith("skipped: another run holds the lock (")


def _running(pid: int) -> bool:
    """True while `pid` is a live process (an exited one that nobody reaped yet, a zombie, holds nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_kill_9_mid_run_then_restart_marks_it_failed_and_runs_its_months_again(
    daemons: Daemons, fresh_db: Warehouse
) -> None:
    first = daemons.start(EVERY_SECOND, PROBE_SLEEP="transform:120")
    daemons.wait_until("the transform stage", lambda: _stage_started(fresh_db, "transform"))
    first.kill()
    first.wait(10)
    [crashed] = _runs(fresh_db, "running")
    second = daemons.start(FAR_AWAY)
    daemons.wait_until("the redo run", lambda: _runs(fresh_db, "succeeded"))
    assert daemons.stop(second) == 0
    old = runs.get_run(fresh_db, crashed.run_id)
    assert old.status == "failed"
    assert old.error is not None and old.error.startswith(f"crashed: the process (pid {first.pid} on ")
    assert [(s.stage, s.status) for s in old.stages] == [("ingest", "succeeded"), ("transform", "failed")]
    [redo] = _runs(fresh_db, "succeeded")
    assert (redo.months, redo.pid) == (MONTHS, second.pid)
    # redone from the stage it did not finish, with the stages it asked for
    assert [s.stage for s in runs.get_run(fresh_db, redo.run_id).stages] == list(pipeline.STAGES)[1:]
    killed_stage = next(s.pid for s in old.stages if s.stage == "transform")
    assert killed_stage is not None
    assert not _running(killed_stage), "the dead daemon's stage process ran on alone"
    with fresh_db.connect() as conn:
        assert scalar(conn, "select redo_of from ops.pipeline_runs where run_id = %s", (redo.run_id,)) == crashed.run_id


def test_sigterm_lets_the_running_stage_finish_and_records_the_run_interrupted(
    daemons: Daemons, fresh_db: Warehouse
) -> None:
    from test_scheduler_chain import probe_rows

    proc = daemons.start(EVERY_SECOND, PROBE_SLEEP="transform:2")
    daemons.wait_until("the transform stage", lambda: _stage_started(fresh_db, "transform"))
    assert daemons.stop(proc) == 0
    [row] = _runs(fresh_db)
    assert row.status == "interrupted"
    assert row.error == "interrupted: shutdown requested; not run: validate, train, publish"
    stages = runs.get_run(fresh_db, row.run_id).stages
    assert [(s.stage, s.status) for s in stages] == [("ingest", "succeeded"), ("transform", "succeeded")]
    assert all(finished is not None for *_, finished in probe_rows(fresh_db))
    assert not (daemons.tmp_path / "data" / "models" / "CURRENT").exists()


def test_a_run_missed_while_the_daemon_was_down_runs_once_on_start(daemons: Daemons, fresh_db: Warehouse) -> None:
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from conftest import settings_for

    now = datetime.now(UTC)
    cron = f"{(now.minute + 30) % 60} * * * *"  # hourly, half an hour from the next fire time
    settings = settings_for(fresh_db, daemons.tmp_path / "data", schedule_cron=cron, schedule_timezone="UTC")
    schema.migrate(fresh_db)
    store = SQLAlchemyJobStore(url=fresh_db.url("psycopg"), tablename=scheduler.JOB_TABLE, tableschema="ops")
    down = BackgroundScheduler(jobstores={"default": store}, timezone="UTC")  # never started: it only builds the job
    store.start(down, "default")
    store.add_job(
        down.add_job(
            scheduler.JOB_FUNC,
            scheduler.build_trigger(settings),
            id=scheduler.JOB_ID,
            coalesce=True,
            max_instances=1,
            misfire_grace_time=settings.misfire_grace_seconds,
            next_run_time=now - timedelta(hours=3),
        )
    )  # three hourly fire times passed meanwhile
    proc = daemons.start(cron)
    daemons.wait_until("the missed run", lambda: _runs(fresh_db, "succeeded"))
    with fresh_db.connect() as conn:
        next_run = scalar(conn, "select next_run_time from ops.apscheduler_jobs")
    assert next_run > time.time() + 60, "the schedule did not move past the missed runs"
    assert daemons.stop(proc) == 0
    assert len(_runs(fresh_db)) == 1


def test_a_second_signal_stops_at_once_and_records_the_stage_interrupted(daemons: Daemons, fresh_db: Warehouse) -> None:
    proc = daemons.start(EVERY_SECOND, PROBE_SLEEP="transform:120")
    daemons.wait_until("the transform stage", lambda: _stage_started(fresh_db, "transform"))
    proc.send_signal(signal.SIGTERM)
    daemons.wait_until("the first signal to be logged", lambda: "finishing the running stage" in daemons.logs())
    assert daemons.stop(proc) == 128 + signal.SIGTERM
    [row] = _runs(fresh_db)
    assert (row.status, row.error) == ("interrupted", "interrupted: signal 15 during a stage")
    stages = runs.get_run(fresh_db, row.run_id).stages
    assert [(s.stage, s.status) for s in stages] == [("ingest", "succeeded"), ("transform", "interrupted")]


def test_a_hung_stage_times_out_releases_the_lock_and_alerts_once_per_run(
    daemons: Daemons, fresh_db: Warehouse
) -> None:
    from alert_receiver import alert_receiver

    with alert_receiver() as receiver:
        proc = daemons.start(
            EVERY_SECOND,
            PROBE_SLEEP="transform:120",
            FARES_STAGE_TIMEOUTS='{"transform": 1}',
            FARES_ALERT_URLS=json.dumps([receiver.url]),
        )
        daemons.wait_until("two timed-out runs", lambda: len(_runs(fresh_db, "timed_out")) >= 2)
        assert daemons.stop(proc) == 0
        timed_out = sorted(r.run_id for r in _runs(fresh_db, "timed_out"))
        titles = receiver.wait_for(len(timed_out))
    assert _runs(fresh_db, "skipped") == [], "a later run found the lock still held"
    for run_id in timed_out:
        stages = runs.get_run(fresh_db, run_id).stages
        assert [(s.stage, s.status) for s in stages] == [("ingest", "succeeded"), ("transform", "timed_out")]
    assert sorted(titles) == sorted(f"fares: run {i} timed out at transform" for i in timed_out)
