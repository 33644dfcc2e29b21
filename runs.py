"""Recording pipeline runs in ops.pipeline_runs / ops.stage_runs, and running stages in order with retries and timeouts.

The tables, the lock and the history reads belong to `fares.ops`; this module writes the rows of a run.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fares.ops import RunLock
from fares.settings import Settings
from fares.warehouse import Warehouse, WarehouseError, caused_by

log = logging.getLogger(__name__)

CRASHED = "crashed:"
_MAX_ERROR = 4000


def _exec(wh: Warehouse, sql: str, params: tuple | None = None) -> list[tuple]:
    with wh.connect(autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:_MAX_ERROR]


def start_run(
    wh: Warehouse,
    months: list[str] | None,
    source: str | None,
    redo_of: int | None = None,
    trigger: str = "cli",
    stages: list[str] | None = None,
) -> int:
    """Insert a 'running' row for this process; returns its run_id."""
    return _exec(
        wh,
        "insert into ops.pipeline_runs (status, months, source, pid, host, redo_of, trigger, stages_requested) "
        "values ('running', %s, %s, %s, %s, %s, %s, %s) returning run_id",
        (months, source, os.getpid(), socket.gethostname(), redo_of, trigger, stages),
    )[0][0]


def set_run_facts(
    wh: Warehouse, run_id: int, log_path: str | None = None, validation_run_ids: list[str] | None = None
) -> None:
    """Remember where the run's log is and which validation runs it made."""
    _exec(
        wh,
        "update ops.pipeline_runs set log_path = coalesce(%s, log_path),"
        " validation_run_ids = coalesce(%s, validation_run_ids) where run_id = %s",
        (log_path, validation_run_ids, run_id),
    )


def lock_holder(wh: Warehouse) -> str:
    """Who holds the pipeline lock, in words (from the newest 'running' row)."""
    rows = _exec(
        wh, "select run_id, pid, host from ops.pipeline_runs where status = 'running' order by run_id desc limit 1"
    )
    return f"run {rows[0][0]}, pid {rows[0][1]} on {rows[0][2]}" if rows else "another process"


def running_since(wh: Warehouse) -> tuple[int, float] | None:
    """(run_id, seconds running) of the newest 'running' run, or None."""
    rows = _exec(
        wh,
        "select run_id, extract(epoch from now() - started_at)::float8 from ops.pipeline_runs"
        " where status = 'running' order by run_id desc limit 1",
    )
    return (rows[0][0], rows[0][1]) if rows else None


def record_skipped(
    wh: Warehouse, months: list[str] | None, source: str | None, trigger: str = "cli", stages: list[str] | None = None
) -> int:
    """Record a run that did not start because another one holds the lock; returns its run_id."""
    reason = f"skipped: another run holds the lock ({lock_holder(wh)})"
    log.warning(reason)
    return _exec(
        wh,
        "insert into ops.pipeline_runs (status, finished_at, months, source, error, pid, host, trigger,"
        " stages_requested) values ('skipped', now(), %s, %s, %s, %s, %s, %s, %s) returning run_id",
        (months, source, reason, os.getpid(), socket.gethostname(), trigger, stages),
    )[0][0]


def finish_run(
    wh: Warehouse,
    run_id: int,
    status: str,
    error: str | None = None,
    model_version: str | None = None,
    rows_in: int | None = None,
    rows_out: int | None = None,
) -> None:
    """Close a run row with its outcome."""
    _exec(
        wh,
        "update ops.pipeline_runs set status = %s, finished_at = now(), error = %s, model_version = %s, "
        "rows_in = %s, rows_out = %s where run_id = %s",
        (status, _clip(error), model_version, rows_in, rows_out, run_id),
    )


def start_stage(wh: Warehouse, run_id: int, stage: str) -> None:
    """Insert a 'running' stage row."""
    _exec(wh, "insert into ops.stage_runs (run_id, stage, status) values (%s, %s, 'running')", (run_id, stage))


def finish_stage(
    wh: Warehouse,
    run_id: int,
    stage: str,
    status: str,
    attempts: int = 1,
    rows_in: int | None = None,
    rows_out: int | None = None,
    error: str | None = None,
) -> None:
    """Close a stage row with its outcome."""
    _exec(
        wh,
        "update ops.stage_runs set status = %s, finished_at = now(), attempts = %s, rows_in = %s, "
        "rows_out = %s, error = %s where run_id = %s and stage = %s",
        (status, attempts, rows_in, rows_out, _clip(error), run_id, stage),
    )


def mark_interrupted(wh: Warehouse, run_id: int, reason: str) -> None:
    """Record a run, and its running stage, as interrupted (shutdown)."""
    _exec(
        wh,
        "update ops.stage_runs set status = 'interrupted', finished_at = now(), error = %s "
        "where run_id = %s and status = 'running'",
        (reason, run_id),
    )
    finish_run(wh, run_id, "interrupted", reason)


def mark_crashed(wh: Warehouse) -> list[int]:
    """Mark runs left 'running' by a dead process as failed. Call only while holding the lock: then no one else runs."""
    rows = _exec(
        wh,
        "update ops.pipeline_runs set status = 'failed', finished_at = now(), error = "  # noqa: S608 - a constant
        f"format('{CRASHED} the process (pid %s on %s) stopped mid-run; its months run again', pid, host) "
        "where status = 'running' returning run_id",
    )
    ids = [r[0] for r in rows]
    if ids:
        _exec(
            wh,
            "update ops.stage_runs set status = 'failed', finished_at = now(), error = 'the process died' "
            "where status = 'running' and run_id = any(%s)",
            (ids,),
        )
        log.warning("runs %s were left running by a dead process: marked failed", ids)
    return ids


def runs_to_redo(wh: Warehouse) -> list[tuple[int, list[str] | None, str | None]]:
    """(run_id, months, source) of crashed or interrupted runs not yet redone; a redo itself is not redone again."""
    return [
        tuple(r)
        for r in _exec(
            wh,
            f"""
        select p.run_id, p.months, p.source from ops.pipeline_runs p
        where (p.status = 'interrupted' or (p.status = 'failed' and p.error like '{CRASHED}%'))
          and p.redo_of is null
          and not exists (select 1 from ops.pipeline_runs r where r.redo_of = p.run_id)
        order by p.run_id""",  # noqa: S608 - a constant
        )
    ]


class StageTimeout(RuntimeError):
    """A stage ran past its limit (FARES_STAGE_TIMEOUT_SECONDS / FARES_STAGE_TIMEOUTS / FARES_RUN_TIMEOUT_SECONDS)."""

    transient = False


@dataclass
class RunContext:
    """What a stage gets: the settings, the database, what this run covers and what earlier stages returned."""

    settings: Settings
    wh: Warehouse
    source: str | None
    months: list[str] | None
    run_id: int
    results: dict[str, Any] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. force=True: reload unchanged files
    deadline: float | None = None  # time.monotonic() by which the running stage must end
    cancel: list[Callable[[], None]] = field(default_factory=list)  # what stops the running stage's work (dbt, ...)

    def remaining(self) -> float | None:
        """Seconds left for the running stage (None: no limit)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


StageFn = Callable[[RunContext], Any]


def result_field(result: Any, name: str) -> Any:
    """`name` (rows_in, rows_out, model_version) from a stage's result, a dict or an object."""
    return result.get(name) if isinstance(result, dict) else getattr(result, name, None)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying (the database or the network went away), never for bad data.

    An error that says `transient = False` (an unreachable source, a timeout) is final whatever caused it.
    """
    import httpx
    import psycopg
    import psycopg2
    from sqlalchemy.exc import OperationalError as SAOperationalError

    cur: BaseException | None = exc
    while cur is not None:
        if getattr(cur, "transient", None) is False:
            return False
        cur = cur.__cause__ or cur.__context__
    kinds = (
        psycopg.OperationalError,
        psycopg2.OperationalError,
        SAOperationalError,
        httpx.TransportError,
        WarehouseError,
        ConnectionError,
    )
    return caused_by(exc, kinds)


def call_with_retries(
    stage: StageFn, ctx: RunContext, name: str, stop: threading.Event
) -> tuple[Any, Exception | None, int]:
    """Run one stage, retrying transient errors with exponential backoff; returns (result, error, attempts)."""
    retries, delay = ctx.settings.stage_retries, ctx.settings.stage_backoff_seconds
    attempt = 0
    while True:
        attempt += 1
        try:
            return stage(ctx), None, attempt
        except Exception as exc:  # noqa: BLE001 - recorded in stage_runs; the chain stops here
            if attempt > retries or not is_transient(exc):
                return None, exc, attempt
            log.warning(
                "%s: transient error (attempt %d of %d), retrying in %.0f s: %s", name, attempt, retries + 1, delay, exc
            )
            if stop.wait(delay):
                return None, exc, attempt
            delay *= 2


def stage_limit(settings: Settings, name: str) -> float:
    """The time limit of stage `name` in seconds."""
    return settings.stage_timeouts.get(name, settings.stage_timeout_seconds)


def call_with_timeout(
    stage: StageFn, ctx: RunContext, name: str, stop: threading.Event, limit: float
) -> tuple[Any, Exception | None, int]:
    """call_with_retries in a worker thread, given `limit` seconds; past it the stage's work is cancelled (dbt killed)
    and a StageTimeout is returned without waiting further for the thread."""
    outcome: list[tuple[Any, Exception | None, int]] = []
    ctx.deadline, ctx.cancel = time.monotonic() + limit, []
    worker = threading.Thread(
        target=lambda: outcome.append(call_with_retries(stage, ctx, name, stop)), name=f"stage-{name}", daemon=True
    )
    worker.start()
    worker.join(limit)
    if not worker.is_alive():
        return outcome[0]
    for cancel in ctx.cancel:
        try:
            cancel()
        except Exception:
            log.exception("%s: could not cancel the timed-out stage's work", name)
    worker.join(5)  # give a cancelled dbt or statement a moment to unwind
    if worker.is_alive():
        log.error("%s: still running after its timeout; abandoned (the run lock is released)", name)
    return None, StageTimeout(f"{name} timed out after {limit:.0f} s"), 1


def execute_stages(
    ctx: RunContext, stages: Mapping[str, StageFn], lock: RunLock, stop: threading.Event
) -> tuple[str, str | None]:
    """Run the stages in order, recording each; the first failure stops the rest. Returns the run's (status, error).

    Each stage gets its own limit, cut to what is left of the run's (settings.run_timeout_seconds).
    """
    names = list(stages)
    run_deadline = time.monotonic() + ctx.settings.run_timeout_seconds
    for i, name in enumerate(names):
        if stop.is_set():
            return "interrupted", f"interrupted: shutdown requested; not run: {', '.join(names[i:])}"
        left = run_deadline - time.monotonic()
        if left <= 0:
            return (
                "timed_out",
                f"run timed out after {ctx.settings.run_timeout_seconds:.0f} s; not run: {', '.join(names[i:])}",
            )
        lock.verify()
        start_stage(ctx.wh, ctx.run_id, name)
        log.info("run %s: %s", ctx.run_id, name)
        limit = min(stage_limit(ctx.settings, name), left)
        result, error, attempts = call_with_timeout(stages[name], ctx, name, stop, limit)
        if error is not None:
            # StageError already names the stage; anything else gets its type, which says a lot (KeyError, ...)
            message = (
                str(error)
                if getattr(error, "stage", None) or isinstance(error, StageTimeout)
                else f"{type(error).__name__}: {error}"
            )
            status = "timed_out" if isinstance(error, StageTimeout) or caused_by(error, StageTimeout) else "failed"
            finish_stage(ctx.wh, ctx.run_id, name, status, attempts, error=message)
            log.error("run %s: %s %s: %s", ctx.run_id, name, status.replace("_", " "), message)
            return status, f"{name} {status.replace('_', ' ')}: {message}"
        finish_stage(
            ctx.wh,
            ctx.run_id,
            name,
            "succeeded",
            attempts,
            result_field(result, "rows_in"),
            result_field(result, "rows_out"),
        )
        ctx.results[name] = result
    return "succeeded", None
