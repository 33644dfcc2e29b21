"""The APScheduler daemon: the chain (fares.chain.pipeline) on a crontab, redo of what a crash left, staleness, its
heartbeat (ops.scheduler_heartbeats, which the API watches) and the nightly prune (fares.ops.retention)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fares.chain import pipeline, runlog
from fares.chain.executor import StageFn
from fares.chain.schedule import CrontabTrigger, ScheduleError
from fares.chain.stage_process import clean_up_after_crash, stop_running_stage
from fares.config.settings import Settings, get_settings
from fares.config.warehouse import get_warehouse
from fares.ops import alerts, retention, runs
from fares.ops.heartbeat import write_beat
from fares.ops.locks import RunLock
from fares.ops.runs import RunRecord
from fares.ops.schema import prepare_warehouse

if TYPE_CHECKING:
    from apscheduler.schedulers.blocking import BlockingScheduler

log = logging.getLogger(__name__)

JOB_ID = "fares-chain"
JOB_FUNC = "fares.scheduler:scheduled_run"
JOB_TABLE = "apscheduler_jobs"
STALE_JOB_ID = "fares-stale-check"
HEARTBEAT_JOB_ID = "fares-heartbeat"
REQUESTS_JOB_ID = "fares-run-requests"
PRUNE_JOB_ID = "fares-prune"

_stop = pipeline.stop_requested  # set by SIGTERM/SIGINT: finish the running stage, start no other
_busy = threading.Lock()  # held while the daemon runs the chain, so shutdown can wait for it
_daemon: dict[str, Any] = {}  # the settings and stages start_daemon was given, for the job the store names


def build_trigger(settings: Settings) -> CrontabTrigger:
    """schedule_cron read as crontab(5) reads it, in schedule_timezone (fares.chain.schedule); ScheduleError if not."""
    return CrontabTrigger(settings.schedule_cron, settings.schedule_timezone)


def build_scheduler(settings: Settings) -> BlockingScheduler:
    """A BlockingScheduler whose one job (the chain) lives in ops.apscheduler_jobs.

    A stored job with the same trigger and grace time is kept as is, so a run missed while the daemon was down
    still fires once on start (coalesced, within misfire_grace_seconds); a changed timetable replaces it.
    """
    from apscheduler.jobstores.memory import MemoryJobStore
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    wh = get_warehouse(settings)
    store = SQLAlchemyJobStore(
        url=wh.url("psycopg"), tablename=JOB_TABLE, tableschema="ops", engine_options={"pool_pre_ping": True}
    )
    sched = BlockingScheduler(
        jobstores={"default": store, "memory": MemoryJobStore()},
        timezone=settings.schedule_timezone,
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": settings.misfire_grace_seconds},
    )
    trigger = build_trigger(settings)
    store.start(sched, "default")  # the table comes from the ops migrations; started now to read the stored job
    stored = store.lookup_job(JOB_ID)
    wanted = (JOB_FUNC, repr(trigger), settings.misfire_grace_seconds)
    if stored is not None and (stored.func_ref, repr(stored.trigger), stored.misfire_grace_time) == wanted:
        log.info("keeping the stored schedule %s; next run %s", trigger, stored.next_run_time)
    else:
        sched.add_job(JOB_FUNC, trigger, id=JOB_ID, name="fares chain", replace_existing=True)
        log.info("schedule set to %s (%s)", trigger, settings.schedule_timezone)
    # Not stored: each daemon checks staleness itself; ops.alerts keeps two daemons from alerting twice.
    every = min(3600.0, max(1.0, settings.alert_stale_hours * 3600 / 4))
    sched.add_job(stale_check, "interval", seconds=every, id=STALE_JOB_ID, jobstore="memory", max_instances=1)
    # A job, not a thread: a beat says the scheduler's loop still hands out jobs.
    sched.add_job(heartbeat, "interval", seconds=settings.heartbeat_seconds, id=HEARTBEAT_JOB_ID, jobstore="memory")
    sched.add_job(
        _take_requests_job,
        "interval",
        seconds=settings.request_poll_seconds,
        id=REQUESTS_JOB_ID,
        jobstore="memory",
        max_instances=1,
    )
    prune_at = CronTrigger(hour=settings.prune_hour, minute=0, timezone=settings.schedule_timezone)
    sched.add_job(nightly_prune, prune_at, id=PRUNE_JOB_ID, jobstore="memory", max_instances=1)
    return sched


def scheduled_run() -> None:
    """The daemon's job: one recorded run of the chain (no arguments, so nothing secret lands in the job store)."""
    with _busy:
        row = pipeline.run_once(
            _daemon.get("settings") or get_settings(), stages=_daemon.get("stages"), trigger="daemon"
        )
    log.info("run %s %s%s", row.run_id, row.status, f": {row.error}" if row.error else "")


def stale_check() -> None:
    """The daemon's second job: alert once when no run succeeded for FARES_ALERT_STALE_HOURS."""
    settings = _daemon.get("settings") or get_settings()
    try:
        alerts.check_stale(settings, get_warehouse(settings))
    except Exception:  # a database away now is the next check's problem
        log.exception("stale-run check failed")


def take_run_requests(settings: Settings | None = None, stages: Mapping[str, StageFn] | None = None) -> list[RunRecord]:
    """The daemon's job for runs asked for through the API (POST /v1/admin/runs while this daemon beats): each one
    made here, in the scheduler's process and container, not in the API's; returns the runs made."""
    settings = settings or _daemon.get("settings") or get_settings()
    stages = stages if stages is not None else _daemon.get("stages")
    wh = get_warehouse(settings)
    done = []
    while not _stop.is_set() and (asked := runs.take_run_request(wh)) is not None:
        chosen = {n: fn for n, fn in dict(stages or pipeline.DEFAULT_STAGES).items() if n in asked.stages}
        log.info("run request %s (%s): %s", asked.request_id, asked.requested_by, ", ".join(chosen))
        with _busy:
            job = pipeline.Run(
                asked.source,
                asked.months,
                chosen,
                trigger="api",
                params={"force": asked.force},
                request_id=asked.request_id,
            )
            done.append(pipeline.run_job(settings, job)[0])
    return done


def _take_requests_job() -> None:
    try:
        take_run_requests()
    except Exception:  # a database away now: the next poll tries again
        log.exception("taking run requests failed")


def heartbeat() -> None:
    """The daemon's heartbeat job: record that this process is alive and when its schedule fires next; a beat after
    a `scheduler_dead` alert closes it with one "recovered" message."""
    settings = _daemon.get("settings") or get_settings()
    try:
        sched = _daemon.get("scheduler")
        job = sched.get_job(JOB_ID) if sched is not None else None
        wh = get_warehouse(settings)
        write_beat(wh, _daemon.get("started_at") or datetime.now(UTC), getattr(job, "next_run_time", None))
        alerts.scheduler_back(settings, wh)
    except Exception:  # a database away now: the API reports the missing beats
        log.exception("heartbeat failed")


@contextlib.contextmanager
def _beating(settings: Settings) -> Iterator[None]:
    """Beat from a thread while the scheduler's loop is not running yet (crash recovery may take a whole run)."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(settings.heartbeat_seconds):
            heartbeat()

    thread = threading.Thread(target=loop, name="fares-heartbeat-recovery", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()


def nightly_prune() -> None:
    """The daemon's nightly job: remove what the retention settings no longer keep (fares.ops.retention)."""
    from fares.ml.registry import Registry

    settings = _daemon.get("settings") or get_settings()
    try:
        retention.prune(settings, get_warehouse(settings), Registry(settings.models_dir))
    except Exception:  # the next night tries again
        log.exception("nightly prune failed")


def recover_runs(settings: Settings, stages: Mapping[str, StageFn] | None = None) -> list[RunRecord]:
    """Mark runs left 'running' by a dead process as failed, then run the months of crashed/interrupted runs again."""
    wh = get_warehouse(settings)
    lock = RunLock(wh)
    if not lock.acquire():
        log.info("another process is running the chain; nothing to recover now")
        return []
    try:
        crashed = runs.mark_crashed(wh)
        if crashed:
            clean_up_after_crash(wh, crashed)
            alerts.crashed(settings, wh, crashed)
        todo = runs.runs_to_redo(wh, settings.redo_max_age_hours)
    finally:
        lock.release()
    done = []
    for item in todo:
        if _stop.is_set():
            break
        chosen = dict(stages or pipeline.DEFAULT_STAGES)
        if item.stages is not None:
            chosen = {name: fn for name, fn in chosen.items() if name in item.stages}
        log.warning(
            "run %s crashed: running %s again for months %s", item.run_id, ", ".join(chosen), item.months or "(newest)"
        )
        with _busy:
            done.append(
                pipeline.run_once(
                    settings, item.source, item.months, stages=chosen, redo_of=item.run_id, trigger="redo"
                )
            )
    return done


def _stop_scheduler(sched: BlockingScheduler) -> None:
    from apscheduler.schedulers import SchedulerNotRunningError

    with contextlib.suppress(SchedulerNotRunningError):  # the signal handler and the start listener both got here
        sched.shutdown(wait=False)


def _on_signal(sched: BlockingScheduler) -> Callable[[int, Any], None]:
    def handle(signum: int, frame: Any) -> None:
        if _stop.is_set():  # a second signal: stop now (the running stage's process too), and say so in the run's row
            if "run_id" in pipeline.current:  # first the record, so the stopped stage's end cannot overwrite it
                pipeline.record_interrupted(
                    pipeline.current["wh"], pipeline.current["run_id"], f"interrupted: signal {signum} during a stage"
                )
            try:
                stop_running_stage(grace=2.0)
            except Exception:  # the exit below must happen whatever the stage's process did
                log.exception("could not stop the running stage's process")
            os._exit(128 + signum)
        log.warning("signal %d: finishing the running stage, then stopping (send again to stop at once)", signum)
        _stop.set()
        if sched.running:  # shutdown from another thread: the main loop may hold the scheduler's locks right now
            threading.Thread(target=_stop_scheduler, args=(sched,), daemon=True).start()
        # not running yet: the EVENT_SCHEDULER_START listener stops it as soon as it starts

    return handle


def start_daemon(settings: Settings, stages: Mapping[str, StageFn] | None = None) -> None:
    """Run the chain on settings.schedule_cron until SIGTERM/SIGINT; first redo what a crash left unfinished.

    On a signal the running stage finishes, later stages do not start and the run is recorded 'interrupted';
    a second signal records it at once and exits.
    """
    build_trigger(settings)  # a schedule that is not one stops the daemon here, before it touches anything
    _daemon.update(settings=settings, stages=stages)
    _stop.clear()
    prepare_warehouse(settings)  # the daemon's process entry: schema ops up to date, once
    sched = build_scheduler(settings)
    _daemon.update(scheduler=sched, started_at=datetime.now(UTC))
    heartbeat()
    from apscheduler.events import EVENT_SCHEDULER_START

    sched.add_listener(lambda _event: _stop_scheduler(sched) if _stop.is_set() else None, EVENT_SCHEDULER_START)
    handler = _on_signal(sched)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)
    with _beating(settings):
        recover_runs(settings, stages)
    if _stop.is_set():
        return
    log.info("daemon started (pid %d): %s %s", os.getpid(), settings.schedule_cron, settings.schedule_timezone)
    sched.start()
    with _busy:  # the main loop ended on a signal: wait for a run in progress to reach its end
        log.info("daemon stopped")


def main() -> None:
    """`python scheduler.py`: the daemon with settings from the environment."""
    runlog.install()
    logging.basicConfig(level=logging.INFO, format=runlog.LINE_FORMAT)
    try:
        start_daemon(get_settings())
    except ScheduleError as exc:  # a crash-loop under `restart: unless-stopped` otherwise; one line says why
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    import importlib

    # the job store names "fares.scheduler:scheduled_run": run the importable module, not __main__ (imported by name:
    # ruff reads a `from fares import scheduler` here as a self-import when the checkout folder is called `fares`)
    importlib.import_module("fares.scheduler").main()
