"""Run and stage records (ops.pipeline_runs, ops.stage_runs): written for the chain, read by the CLI, API, alerts."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any

from fares.config.warehouse import Warehouse

log = logging.getLogger(__name__)

CRASHED = "crashed:"
_MAX_ERROR = 4000


@dataclass(frozen=True)
class StageRecord:
    """One stage of a recorded run (a row of ops.stage_runs)."""

    run_id: int
    stage: str
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | succeeded | failed | interrupted | timed_out | cancelled
    attempts: int
    rows_in: int | None
    rows_out: int | None
    error: str | None
    note: str | None = None  # what the stage says of its work when it had nothing to do
    pid: int | None = None  # the stage's own process (its process group), on the run's host

    @property
    def seconds(self) -> float | None:
        """How long the stage took (None while it runs)."""
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class RunRecord:
    """One recorded run of the chain (a row of ops.pipeline_runs) with its stages, oldest first."""

    run_id: int
    started_at: datetime
    finished_at: datetime | None
    status: str  # running | succeeded | failed | interrupted | skipped | timed_out | cancelled
    months: list[str] | None
    source: str | None
    error: str | None
    model_version: str | None
    rows_in: int | None
    rows_out: int | None
    pid: int | None
    host: str | None
    redo_of: int | None
    trigger: str | None
    stages_requested: list[str] | None
    log_path: str | None
    validation_run_ids: list[str] | None
    cancel_requested_at: datetime | None = None
    cancel_requested_by: str | None = None
    stages: list[StageRecord] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        """How long the run took (None while it runs)."""
        return None if self.finished_at is None else (self.finished_at - self.started_at).total_seconds()

    @property
    def failed_stage(self) -> str | None:
        """The stage that failed or timed out, if one did."""
        return next((s.stage for s in self.stages if s.status in ("failed", "timed_out")), None)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (the API's run body)."""
        return asdict(self)


@dataclass(frozen=True)
class RedoItem:
    """A crashed run (its process died) not yet redone: what to run again, from its first unfinished stage."""

    run_id: int
    months: list[str] | None
    source: str | None
    stages: list[str] | None  # None: every stage (a run recorded without its stage list)


_RUN_COLUMNS = tuple(f.name for f in fields(RunRecord) if f.name != "stages")
_STAGE_COLUMNS = tuple(f.name for f in fields(StageRecord))
_RUN_LIST, _STAGE_LIST = ", ".join(_RUN_COLUMNS), ", ".join(_STAGE_COLUMNS)  # constants: safe to format into SQL


def _exec(wh: Warehouse, sql: str, params: tuple[Any, ...] | None = None) -> list[tuple[Any, ...]]:
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
    return int(
        _exec(
            wh,
            "insert into ops.pipeline_runs (status, months, source, pid, host, redo_of, trigger, stages_requested) "
            "values ('running', %s, %s, %s, %s, %s, %s, %s) returning run_id",
            (months, source, os.getpid(), socket.gethostname(), redo_of, trigger, stages),
        )[0][0]
    )


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


def last_success(wh: Warehouse) -> tuple[datetime, float] | None:
    """(when, seconds ago) the newest succeeded run finished, or, before any success, when the first run started;
    skipped runs do not count. None when no run was recorded yet."""
    rows = _exec(
        wh,
        "select coalesce(max(finished_at) filter (where status = 'succeeded'), min(started_at)),"
        " extract(epoch from now() - coalesce(max(finished_at) filter (where status = 'succeeded'),"
        " min(started_at)))::float8 from ops.pipeline_runs where status <> 'skipped'",
    )
    return None if not rows or rows[0][0] is None else (rows[0][0], rows[0][1])


def record_skipped(
    wh: Warehouse, months: list[str] | None, source: str | None, trigger: str = "cli", stages: list[str] | None = None
) -> int:
    """Record a run that did not start because another one holds the lock; returns its run_id."""
    reason = f"skipped: another run holds the lock ({lock_holder(wh)})"
    log.warning(reason)
    return int(
        _exec(
            wh,
            "insert into ops.pipeline_runs (status, finished_at, months, source, error, pid, host, trigger,"
            " stages_requested) values ('skipped', now(), %s, %s, %s, %s, %s, %s, %s) returning run_id",
            (months, source, reason, os.getpid(), socket.gethostname(), trigger, stages),
        )[0][0]
    )


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
        # a run already closed (recorded interrupted by the daemon's forced stop, say) keeps that record
        "update ops.pipeline_runs set status = %s, finished_at = now(), error = %s, model_version = %s, "
        "rows_in = %s, rows_out = %s where run_id = %s and status = 'running'",
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
    note: str | None = None,
) -> None:
    """Close a stage row with its outcome (`note`: what it says of its work, e.g. that there was nothing to do)."""
    _exec(
        wh,
        "update ops.stage_runs set status = %s, finished_at = now(), attempts = %s, rows_in = %s, "
        "rows_out = %s, error = %s, note = %s where run_id = %s and stage = %s and status = 'running'",
        (status, attempts, rows_in, rows_out, _clip(error), note, run_id, stage),
    )


def request_cancel(wh: Warehouse, run_id: int, by: str) -> RunRecord:
    """Ask a running run to stop (its chain process polls for it); a run whose process is gone is recorded cancelled
    at once. Returns the run as it is now; KeyError when there is no such run."""
    run = get_run(wh, run_id)
    if run.status != "running":
        return run
    _exec(
        wh,
        "update ops.pipeline_runs set cancel_requested_at = coalesce(cancel_requested_at, now()),"
        " cancel_requested_by = coalesce(cancel_requested_by, %s) where run_id = %s",
        (by, run_id),
    )
    if run.host == socket.gethostname() and run.pid is not None and not _alive(run.pid):
        # nobody is left to notice the request: record it now (a cancelled run is never redone)
        reason = f"cancelled by {by} (its process, pid {run.pid}, had already stopped)"
        _exec(
            wh,
            "update ops.stage_runs set status = 'cancelled', finished_at = now(), error = %s"
            " where run_id = %s and status = 'running'",
            (reason, run_id),
        )
        finish_run(wh, run_id, "cancelled", reason)
    return get_run(wh, run_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def cancel_requested(wh: Warehouse, run_id: int) -> str | None:
    """Who asked to cancel run `run_id` (None when nobody did)."""
    rows = _exec(
        wh,
        "select cancel_requested_by from ops.pipeline_runs where run_id = %s and cancel_requested_at is not null",
        (run_id,),
    )
    return str(rows[0][0] or "someone") if rows else None


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
    ids = [int(r[0]) for r in rows]
    if ids:
        _exec(
            wh,
            "update ops.stage_runs set status = 'failed', finished_at = now(), error = 'the process died' "
            "where status = 'running' and run_id = any(%s)",
            (ids,),
        )
        log.warning("runs %s were left running by a dead process: marked failed", ids)
    return ids


def runs_to_redo(wh: Warehouse, max_age_hours: float) -> list[RedoItem]:
    """Crashed runs younger than `max_age_hours`, not redone yet, oldest first, each with the stages it did not
    finish; a redo itself, an interrupted (stopped on purpose) or a cancelled run is never redone."""
    rows = _exec(
        wh,
        f"""
        select p.run_id, p.months, p.source, p.stages_requested,
               array(select s.stage from ops.stage_runs s where s.run_id = p.run_id and s.status = 'succeeded')
        from ops.pipeline_runs p
        where p.status = 'failed' and p.error like '{CRASHED}%%'
          and p.started_at > now() - make_interval(secs => %s)
          and p.redo_of is null
          and not exists (select 1 from ops.pipeline_runs r where r.redo_of = p.run_id)
        order by p.run_id""",  # noqa: S608 - a constant
        (max_age_hours * 3600,),
    )
    items = []
    for run_id, months, source, requested, done in rows:
        left = [s for s in requested if s not in done] if requested else None
        first = requested.index(left[0]) if left else None
        items.append(RedoItem(int(run_id), months, source, requested[first:] if first is not None else None))
    return [i for i in items if i.stages is None or i.stages]


def set_stage_pid(wh: Warehouse, run_id: int, stage: str, pid: int) -> None:
    """Remember the process a stage runs in (so a crash can be cleaned up after)."""
    _exec(wh, "update ops.stage_runs set pid = %s where run_id = %s and stage = %s", (pid, run_id, stage))


def stage_processes(wh: Warehouse, run_ids: list[int]) -> list[tuple[int, str, int, str | None]]:
    """(run_id, stage, pid, host) of the stages of these runs that ran in their own process."""
    rows = _exec(
        wh,
        "select s.run_id, s.stage, s.pid, p.host from ops.stage_runs s join ops.pipeline_runs p using (run_id)"
        " where s.run_id = any(%s) and s.pid is not null",
        (run_ids,),
    )
    return [(int(r), str(st), int(pid), h) for r, st, pid, h in rows]


def validation_ids_since_start(wh: Warehouse, run_id: int) -> list[str]:
    """Ids of the validation runs stored since pipeline run `run_id` started (a failed gate returns no report)."""
    rows = _exec(
        wh,
        "select v.run_id from ops.validation_runs v, ops.pipeline_runs p"
        " where p.run_id = %s and v.started_at >= p.started_at order by v.started_at",
        (run_id,),
    )
    return [r[0] for r in rows]


def _stages_of(wh: Warehouse, run_ids: list[int]) -> dict[int, list[StageRecord]]:
    found: dict[int, list[StageRecord]] = {}
    rows = _exec(
        wh,
        f"select {_STAGE_LIST} from ops.stage_runs where run_id = any(%s) order by started_at, stage",  # noqa: S608 - constant column list
        (run_ids,),
    )
    for row in rows:
        stage = StageRecord(*row)
        found.setdefault(stage.run_id, []).append(stage)
    return found


def _record(row: tuple[Any, ...], stages: list[StageRecord]) -> RunRecord:
    return RunRecord(**{**dict(zip(_RUN_COLUMNS, row, strict=True)), "stages": stages})


def list_runs(wh: Warehouse, limit: int = 20) -> list[RunRecord]:
    """The newest `limit` pipeline runs, newest first (run_id order), each with its stages."""
    rows = _exec(wh, f"select {_RUN_LIST} from ops.pipeline_runs order by run_id desc limit %s", (limit,))  # noqa: S608 - constant columns
    stages = _stages_of(wh, [r[0] for r in rows])
    return [_record(row, stages.get(row[0], [])) for row in rows]


def get_run(wh: Warehouse, run_id: int) -> RunRecord:
    """One run with its stages; KeyError when there is no such run."""
    rows = _exec(wh, f"select {_RUN_LIST} from ops.pipeline_runs where run_id = %s", (run_id,))  # noqa: S608 - constant columns
    if not rows:
        raise KeyError(f"no pipeline run {run_id}")
    return _record(rows[0], _stages_of(wh, [run_id]).get(run_id, []))


@dataclass(frozen=True)
class RunRequest:
    """A run asked for through the API, for the daemon's process to make."""

    request_id: int
    months: list[str] | None
    source: str | None
    stages: list[str]
    force: bool
    requested_by: str


def request_run(
    wh: Warehouse, months: list[str] | None, source: str | None, stages: list[str], force: bool, by: str
) -> int:
    """Queue a run for the daemon; returns the request id."""
    return int(
        _exec(
            wh,
            "insert into ops.run_requests (requested_by, months, source, stages, force)"
            " values (%s, %s, %s, %s, %s) returning request_id",
            (by, months, source, stages, force),
        )[0][0]
    )


def take_run_request(wh: Warehouse) -> RunRequest | None:
    """Claim the oldest request nobody took (two daemons never take the same one)."""
    rows = _exec(
        wh,
        "update ops.run_requests set taken_at = now(), taken_by = %s where request_id = ("
        " select request_id from ops.run_requests where taken_at is null order by request_id"
        " for update skip locked limit 1)"
        " returning request_id, months, source, stages, force, requested_by",
        (f"pid {os.getpid()} on {socket.gethostname()}",),
    )
    return RunRequest(*rows[0]) if rows else None


def link_request(wh: Warehouse, request_id: int, run_id: int) -> None:
    """Remember which run a request became."""
    _exec(wh, "update ops.run_requests set run_id = %s where request_id = %s", (run_id, request_id))


def request_state(wh: Warehouse, request_id: int) -> tuple[bool, int | None]:
    """(taken, run_id) of a request; KeyError when there is no such request."""
    rows = _exec(wh, "select taken_at is not null, run_id from ops.run_requests where request_id = %s", (request_id,))
    if not rows:
        raise KeyError(f"no run request {request_id}")
    return bool(rows[0][0]), rows[0][1]
