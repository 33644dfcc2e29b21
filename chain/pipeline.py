"""The chain: stages run in order under the pipeline lock, recorded, logged per run, timed out, alerted.

`fares run`, `fares transform|validate|train`, `fares backfill`, the daemon and `POST /v1/admin/runs` all come here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from fares.chain import runlog
from fares.chain.executor import RunContext, StageFn, StageResult, execute_stages
from fares.chain.stage_process import clean_up_after_crash
from fares.chain.stages import DEFAULT_STAGES, STAGES, PublishOutcome, StageError, select_stages
from fares.config.settings import Settings, get_settings
from fares.config.warehouse import Warehouse, get_warehouse
from fares.ops import alerts, runs
from fares.ops.locks import RunLock
from fares.ops.runs import RunRecord

log = logging.getLogger(__name__)

__all__ = ["STAGES", "ChainResult", "Run", "run_chain", "run_once", "start_in_background", "stop_requested"]

stop_requested = threading.Event()  # set by the daemon's SIGTERM/SIGINT: finish the running stage, start no other
current: dict[str, Any] = {}  # the run in progress: wh, run_id (for recording a forced stop)


@dataclass
class ChainResult:
    """What one run of the chain did, stage by stage."""

    stages: dict[str, Any] = field(default_factory=dict)  # each stage's own result (StageResult.value)
    model_version: str | None = None
    promoted: bool = False


@dataclass
class Run:
    """One run to make: what it covers, which stages, who asked."""

    source: str | None = None
    months: list[str] | None = None
    stages: Mapping[str, StageFn] | None = None
    redo_of: int | None = None
    trigger: str = "cli"
    params: dict[str, Any] = field(default_factory=dict)
    wait: bool = True  # wait in line for the lock (FARES_LOCK_WAIT_SECONDS) rather than be recorded skipped at once
    request_id: int | None = None  # the API's run request (ops.run_requests) this run makes


def record_interrupted(wh: Warehouse, run_id: int, reason: str) -> None:
    """Record a run as interrupted, if the database lets us (else the next start marks it crashed)."""
    try:
        runs.mark_interrupted(wh, run_id, reason)
    except Exception:
        log.exception("could not record run %s as interrupted", run_id)


class _Started:
    """A run that holds the lock and has its row: what is needed to execute it (now or in a thread)."""

    def __init__(self, settings: Settings, wh: Warehouse, lock: RunLock, run_id: int, job: Run) -> None:
        self.settings, self.wh, self.lock, self.run_id, self.job = settings, wh, lock, run_id, job


def _begin(settings: Settings, job: Run) -> tuple[_Started | None, RunRecord | None]:
    """Take the lock (waiting in line up to settings.lock_wait_seconds when `job.wait`) and insert the run's row;
    (None, the skipped run) when another run holds the lock."""
    wh = get_warehouse(settings)
    stages = job.stages or DEFAULT_STAGES
    names = list(stages)
    shown_source, shown_months = job.source or settings.tlc_source, job.months or settings.months or None
    lock = RunLock(wh)
    wait = settings.lock_wait_seconds if job.wait else 0
    if not lock.acquire() and (wait <= 0 or not _wait_for(lock, wh, wait)):
        row = runs.get_run(wh, runs.record_skipped(wh, shown_months, shown_source, job.trigger, names))
        alerts.after_run(settings, wh, row)
        return None, row
    try:
        crashed = runs.mark_crashed(wh)
        if crashed:
            clean_up_after_crash(wh, crashed)
            alerts.crashed(settings, wh, crashed)
        run_id = runs.start_run(wh, shown_months, shown_source, job.redo_of, job.trigger, names)
        if job.request_id is not None:
            runs.link_request(wh, job.request_id, run_id)
    except BaseException:
        lock.release()
        raise
    return _Started(settings, wh, lock, run_id, job), None


class LockBusy(RuntimeError):
    """Another run held the pipeline lock (past the wait, or at once when asked not to wait); `run` is the skipped
    record made for it."""

    def __init__(self, run: RunRecord) -> None:
        super().__init__(run.error or "skipped: another run holds the lock")
        self.run = run


@contextmanager
def writer_lock(settings: Settings, what: list[str], wait: bool = True, trigger: str = "cli") -> Iterator[Warehouse]:
    """Hold the pipeline lock for work that is not a recorded run (`fares ingest`, `fares dbt`, `fares docs`), so that
    every writer takes the same lock; LockBusy (with its skipped record) when it cannot be had."""
    wh = get_warehouse(settings)
    lock = RunLock(wh)
    seconds = settings.lock_wait_seconds if wait else 0
    if not lock.acquire() and (seconds <= 0 or not _wait_for(lock, wh, seconds)):
        raise LockBusy(runs.get_run(wh, runs.record_skipped(wh, settings.months or None, None, trigger, what)))
    try:
        yield wh
    finally:
        lock.release()


def _wait_for(lock: RunLock, wh: Warehouse, seconds: float) -> bool:
    log.info("the pipeline lock is held (%s): waiting in line, up to %.0f s", runs.lock_holder(wh), seconds)
    return lock.acquire(wait_seconds=seconds)


def _execute(started: _Started) -> tuple[RunRecord, dict[str, StageResult]]:
    """Run the stages of a begun run, record the outcome, alert, release the lock; (run row, stage results)."""
    settings, wh, run_id, job = started.settings, started.wh, started.run_id, started.job
    ctx = RunContext(settings, wh, job.source, job.months, run_id, params=dict(job.params))
    try:
        with runlog.run_logging(settings, run_id) as log_path:
            runs.set_run_facts(wh, run_id, log_path=str(log_path))
            current.update(wh=wh, run_id=run_id)
            try:
                status, error = execute_stages(ctx, job.stages or DEFAULT_STAGES, started.lock, stop_requested)
            except BaseException as exc:  # Ctrl+C in `fares run`, or the bookkeeping itself failed
                record_interrupted(wh, run_id, f"interrupted: {type(exc).__name__}: {exc}")
                raise
            published = _published(ctx.results)
            ingested, built = ctx.results.get("ingest"), ctx.results.get("transform")
            runs.finish_run(
                wh,
                run_id,
                status,
                error,
                published.model_version if published else None,
                ingested.rows_out if ingested else None,
                built.rows_out if built else None,
            )
            log.info("run %s %s%s", run_id, status, f": {error}" if error else "")
    finally:
        current.clear()
        started.lock.release()
    row = runs.get_run(wh, run_id)
    published = _published(ctx.results)
    alerts.after_run(settings, wh, row, published.kept_model if published else None)
    return row, ctx.results


def _published(results: dict[str, StageResult]) -> PublishOutcome | None:
    done = results.get("publish")
    return done.value if done is not None and isinstance(done.value, PublishOutcome) else None


def run_job(settings: Settings, job: Run) -> tuple[RunRecord, dict[str, StageResult]]:
    """Run `job` now under the pipeline lock and record it; returns (the run with its stages, stage results)."""
    started, skipped = _begin(settings, job)
    if started is None:
        assert skipped is not None  # noqa: S101 - _begin returns one of the two
        return skipped, {}
    return _execute(started)


def run_once(
    settings: Settings,
    source: str | None = None,
    months: list[str] | None = None,
    *,
    stages: Mapping[str, StageFn] | None = None,
    redo_of: int | None = None,
    trigger: str = "cli",
    params: dict[str, Any] | None = None,
    wait: bool = True,
) -> RunRecord:
    """Run the chain (or `stages`) now under the pipeline lock and record it; returns the run with its stages.

    `status` is 'succeeded', 'failed' (a stage failed; later stages did not run, the current model is untouched),
    'timed_out' (a stage or the run passed its limit), 'interrupted' (shutdown) or 'skipped' (another run held the
    lock, and it did not wait or waited past FARES_LOCK_WAIT_SECONDS). Pipeline rows_in = rows ingested, rows_out =
    rows in the training mart.
    """
    return run_job(settings, Run(source, months, stages, redo_of, trigger, dict(params or {}), wait))[0]


def start_in_background(settings: Settings, job: Run) -> RunRecord:
    """Take the lock (never waiting) and record the run now, run its stages in a thread; returns the 'running' (or
    skipped) run."""
    started, skipped = _begin(settings, replace(job, wait=False))
    if started is None:
        assert skipped is not None  # noqa: S101 - _begin returns one of the two
        return skipped
    threading.Thread(target=_execute, args=(started,), name=f"run-{started.run_id}", daemon=True).start()
    return runs.get_run(started.wh, started.run_id)


def run_chain(
    settings: Settings | None = None, source: str | None = None, months: list[str] | None = None
) -> ChainResult:
    """Run every stage once, in order, recorded like run_once; raises StageError naming the first failing stage."""
    settings = settings or get_settings()
    row, results = run_job(settings, Run(source, months))
    if row.status != "succeeded":
        failed = next((s.stage for s in row.stages if s.status != "succeeded"), "chain")
        raise StageError(failed, row.error or row.status)
    trained = results["train"].value if "train" in results else None
    return ChainResult(
        stages={k: v.value for k, v in results.items()},
        model_version=trained.version if trained is not None else None,
        promoted=bool(trained is not None and trained.promoted),
    )


def stages_for(start: str | None = None, only: list[str] | None = None) -> dict[str, StageFn]:
    """The default stages from `start` on, or only `only`."""
    return select_stages(DEFAULT_STAGES, start, only)
