"""The executor: running a run's stages in order, each with retries of transient errors and a time limit.

The run's records (ops.pipeline_runs, ops.stage_runs) are written through `fares.ops.runs`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse, WarehouseError, caused_by
from fares.ops.locks import RunLock
from fares.ops.runs import finish_stage, start_stage

log = logging.getLogger(__name__)


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
    results: dict[str, StageResult] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)  # e.g. force=True: reload unchanged files
    deadline: float | None = None  # time.monotonic() by which the running stage must end
    cancel: list[Callable[[], None]] = field(default_factory=list)  # what stops the running stage's work (dbt, ...)

    def remaining(self) -> float | None:
        """Seconds left for the running stage (None: no limit)."""
        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


@dataclass(frozen=True)
class StageResult:
    """What a stage returns to the chain: its own result (`value`: an IngestReport, a TrainOutcome, ...) and the rows
    it read and wrote, for its record."""

    value: Any = None
    rows_in: int | None = None
    rows_out: int | None = None


StageFn = Callable[[RunContext], StageResult]


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
) -> tuple[StageResult | None, Exception | None, int]:
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
) -> tuple[StageResult | None, Exception | None, int]:
    """call_with_retries in a worker thread, given `limit` seconds; past it the stage's work is cancelled (dbt killed)
    and a StageTimeout is returned without waiting further for the thread."""
    outcome: list[tuple[StageResult | None, Exception | None, int]] = []
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
        result = result if result is not None else StageResult()
        finish_stage(ctx.wh, ctx.run_id, name, "succeeded", attempts, result.rows_in, result.rows_out)
        ctx.results[name] = result
    return "succeeded", None
