"""Recorded pipeline runs: ops.pipeline_runs / ops.stage_runs, the advisory lock, retries, stages run in order."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from fares.warehouse import Warehouse, WarehouseError, caused_by, scalar

if TYPE_CHECKING:
    import psycopg

from fares.settings import Settings

log = logging.getLogger(__name__)

# Advisory-lock keys, below 2**32 so pg_locks shows them in `objid`: "FARE" and "FDDL".
LOCK_KEY = 0x46415245
_DDL_KEY = 0x4644444C
CRASHED = "crashed:"
RUN_COLUMNS = (
    "run_id",
    "started_at",
    "finished_at",
    "status",
    "months",
    "source",
    "error",
    "model_version",
    "rows_in",
    "rows_out",
    "pid",
    "host",
)
STAGE_COLUMNS = ("run_id", "stage", "started_at", "finished_at", "status", "attempts", "rows_in", "rows_out", "error")
_MAX_ERROR = 4000

_DDL = """
create schema if not exists ops;
create table if not exists ops.pipeline_runs (
    run_id bigint generated always as identity primary key,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted', 'skipped')),
    months text[],
    source text,
    error text,
    model_version text,
    rows_in bigint,
    rows_out bigint,
    pid integer,
    host text,
    redo_of bigint references ops.pipeline_runs (run_id)
);
create table if not exists ops.stage_runs (
    run_id bigint not null references ops.pipeline_runs (run_id) on delete cascade,
    stage text not null,
    started_at timestamptz not null default now(),
    finished_at timestamptz,
    status text not null check (status in ('running', 'succeeded', 'failed', 'interrupted')),
    attempts integer not null default 1,
    rows_in bigint,
    rows_out bigint,
    error text,
    primary key (run_id, stage)
);
"""


class LockLostError(WarehouseError):
    """The connection holding the pipeline lock died and another process took the lock meanwhile."""


@contextmanager
def ddl_lock(wh: Warehouse) -> Iterator[None]:
    """Serialise schema creation between processes starting at the same moment."""
    with wh.connect(autocommit=True) as conn:
        conn.execute("select pg_advisory_lock(%s)", (_DDL_KEY,))
        try:
            yield
        finally:
            conn.execute("select pg_advisory_unlock(%s)", (_DDL_KEY,))


def ensure_tables(wh: Warehouse) -> None:
    """Create schema ops and the run tables if they are missing."""
    with ddl_lock(wh), wh.connect(autocommit=True) as conn:
        conn.execute(_DDL)


class RunLock:
    """A session-level pg advisory lock on a dedicated connection, held for a whole run."""

    def __init__(self, wh: Warehouse) -> None:
        self.wh = wh
        self._conn: psycopg.Connection | None = None

    def acquire(self) -> bool:
        """Try once, without waiting; True when this process now holds the lock."""
        conn = self.wh.connect(autocommit=True)
        if scalar(conn, "select pg_try_advisory_lock(%s)", (LOCK_KEY,)):
            self._conn = conn
            return True
        conn.close()
        return False

    def verify(self) -> None:
        """Check the lock connection is alive; after a database restart take the lock again or raise LockLostError."""
        import psycopg

        if self._conn is None:
            raise LockLostError("the pipeline lock is not held")
        try:
            self._conn.execute("select 1")
            return
        except psycopg.Error:
            log.warning("the connection holding the pipeline lock died; taking the lock again")
        self._conn = None
        if not self.acquire():
            raise LockLostError("lost the pipeline lock (database restart?) and another run holds it now")

    def release(self) -> None:
        """Give the lock back (closing the connection would too)."""
        if self._conn is None:
            return
        try:
            self._conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
            self._conn.close()
        except Exception:
            log.debug("lock connection already gone", exc_info=True)
        self._conn = None


def _exec(wh: Warehouse, sql: str, params: tuple | None = None) -> list[tuple]:
    with wh.connect(autocommit=True) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description else []


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:_MAX_ERROR]


def start_run(wh: Warehouse, months: list[str] | None, source: str | None, redo_of: int | None = None) -> int:
    """Insert a 'running' row for this process; returns its run_id."""
    return _exec(
        wh,
        "insert into ops.pipeline_runs (status, months, source, pid, host, redo_of) "
        "values ('running', %s, %s, %s, %s, %s) returning run_id",
        (months, source, os.getpid(), socket.gethostname(), redo_of),
    )[0][0]


def lock_holder(wh: Warehouse) -> str:
    """Who holds the pipeline lock, in words (from the newest 'running' row)."""
    rows = _exec(
        wh, "select run_id, pid, host from ops.pipeline_runs where status = 'running' order by run_id desc limit 1"
    )
    return f"run {rows[0][0]}, pid {rows[0][1]} on {rows[0][2]}" if rows else "another process"


def record_skipped(wh: Warehouse, months: list[str] | None, source: str | None) -> int:
    """Record a run that did not start because another one holds the lock; returns its run_id."""
    reason = f"skipped: another run holds the lock ({lock_holder(wh)})"
    log.warning(reason)
    return _exec(
        wh,
        "insert into ops.pipeline_runs (status, finished_at, months, source, error, pid, host) "
        "values ('skipped', now(), %s, %s, %s, %s, %s) returning run_id",
        (months, source, reason, os.getpid(), socket.gethostname()),
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


def _rows_as_dicts(rows: list[tuple], columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [dict(zip(columns, r, strict=True)) for r in rows]


def _tables_exist(wh: Warehouse) -> bool:
    return _exec(wh, "select to_regclass('ops.pipeline_runs') is not null")[0][0]


def list_runs(settings: Settings, wh: Warehouse, limit: int = 50) -> list[dict[str, Any]]:
    """The newest `limit` pipeline runs, newest first, as dicts keyed by RUN_COLUMNS (empty before the first run)."""
    if not _tables_exist(wh):
        return []
    rows = _exec(wh, f"select {', '.join(RUN_COLUMNS)} from ops.pipeline_runs order by run_id desc limit %s", (limit,))  # noqa: S608 - fixed names
    return _rows_as_dicts(rows, RUN_COLUMNS)


def list_stage_runs(wh: Warehouse, run_id: int) -> list[dict[str, Any]]:
    """The stage rows of one run, in the order they ran."""
    if not _tables_exist(wh):
        return []
    rows = _exec(
        wh,
        f"select {', '.join(STAGE_COLUMNS)} from ops.stage_runs where run_id = %s order by started_at, stage",  # noqa: S608 - fixed names
        (run_id,),
    )
    return _rows_as_dicts(rows, STAGE_COLUMNS)


def get_run(wh: Warehouse, run_id: int) -> dict[str, Any]:
    """One run as a dict (RUN_COLUMNS) plus `stages`: its stage rows."""
    rows = _exec(wh, f"select {', '.join(RUN_COLUMNS)} from ops.pipeline_runs where run_id = %s", (run_id,))  # noqa: S608 - fixed names
    if not rows:
        raise KeyError(f"no pipeline run {run_id}")
    return {**_rows_as_dicts(rows, RUN_COLUMNS)[0], "stages": list_stage_runs(wh, run_id)}


@dataclass
class RunContext:
    """What a stage gets: the settings, the database, what this run covers and what earlier stages returned."""

    settings: Settings
    wh: Warehouse
    source: str | None
    months: list[str] | None
    run_id: int
    results: dict[str, Any] = field(default_factory=dict)


StageFn = Callable[[RunContext], Any]


def result_field(result: Any, name: str) -> Any:
    """`name` (rows_in, rows_out, model_version) from a stage's result, a dict or an object."""
    return result.get(name) if isinstance(result, dict) else getattr(result, name, None)


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying (the database or the network went away), never for bad data."""
    import httpx
    import psycopg
    import psycopg2
    from sqlalchemy.exc import OperationalError as SAOperationalError

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


def execute_stages(
    ctx: RunContext, stages: Mapping[str, StageFn], lock: RunLock, stop: threading.Event
) -> tuple[str, str | None]:
    """Run the stages in order, recording each; the first failure stops the rest. Returns the run's (status, error)."""
    names = list(stages)
    for i, name in enumerate(names):
        if stop.is_set():
            return "interrupted", f"interrupted: shutdown requested; not run: {', '.join(names[i:])}"
        lock.verify()
        start_stage(ctx.wh, ctx.run_id, name)
        log.info("run %s: %s", ctx.run_id, name)
        result, error, attempts = call_with_retries(stages[name], ctx, name, stop)
        if error is not None:
            # StageError already names the stage; anything else gets its type, which says a lot (KeyError, ...)
            message = str(error) if getattr(error, "stage", None) else f"{type(error).__name__}: {error}"
            finish_stage(ctx.wh, ctx.run_id, name, "failed", attempts, error=message)
            log.error("run %s: %s failed: %s", ctx.run_id, name, message)
            return "failed", f"{name} failed: {message}"
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
