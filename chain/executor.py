"""The executor: running a run's stages in order, each with retries of transient errors and a time limit.

The run's records (ops.pipeline_runs, ops.stage_runs) are written through `fares.ops.runs`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping

from fares.chain.context import RunContext, StageFn, StageResult
from fares.chain.failures import StageFailed, StageStopped, StageTimeout, is_transient
from fares.chain.stage_process import run_in_process
from fares.config.settings import Settings
from fares.config.warehouse import caused_by
from fares.ops.locks import RunLock
from fares.ops.runs import cancel_requested, finish_stage, start_stage

__all__ = [
    "RunContext",
    "StageFn",
    "StageResult",
    "StageTimeout",
    "call_with_retries",
    "call_with_timeout",
    "execute_stages",
    "is_transient",
    "stage_limit",
]

log = logging.getLogger(__name__)


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
    stage: StageFn,
    ctx: RunContext,
    name: str,
    stop: threading.Event,
    limit: float,
    should_stop: Callable[[], str | None] = lambda: None,
) -> tuple[StageResult | None, Exception | None, int]:
    """call_with_retries, each attempt in its own process (fares.chain.stage_process), given `limit` seconds in all;
    past it, or when `should_stop` gives a reason (a cancel), the stage's process is stopped and its sessions ended.

    Where the engine cannot run a stage in a forked process (a Spark session already open in this one), the stage
    runs in a thread of this process as before: past its limit its registered work (dbt) is cancelled.
    """
    from fares.engines import get_engine

    ctx.deadline, ctx.limit, ctx.cancel = time.monotonic() + limit, limit, []
    if not get_engine(ctx.settings).forks_stages():
        return _call_in_thread(stage, ctx, name, stop, limit)
    return call_with_retries(lambda c: run_in_process(stage, c, name, should_stop), ctx, name, stop)


def _call_in_thread(
    stage: StageFn, ctx: RunContext, name: str, stop: threading.Event, limit: float
) -> tuple[StageResult | None, Exception | None, int]:
    from fares.engines import get_engine

    outcome: list[tuple[StageResult | None, Exception | None, int]] = []

    def work() -> None:
        # the stage's engine work is tagged, so a timeout interrupts it (Spark: interruptTag) beside stopping dbt
        with get_engine(ctx.settings).tag_work(f"fares-run{ctx.run_id}-{name}", ctx.cancel):
            outcome.append(call_with_retries(stage, ctx, name, stop))

    worker = threading.Thread(target=work, name=f"stage-{name}", daemon=True)
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


def _status_of(error: Exception) -> str:
    if getattr(error, "cancelled", False):
        return "cancelled"
    timed_out = getattr(error, "timed_out", False) or isinstance(error, StageTimeout) or caused_by(error, StageTimeout)
    return "timed_out" if timed_out else "failed"


def _message_of(error: Exception) -> str:
    # StageError already names the stage, as do our own stop/timeout/child errors; anything else gets its type
    named = getattr(error, "stage", None) or isinstance(error, StageTimeout | StageFailed | StageStopped)
    return str(error) if named else f"{type(error).__name__}: {error}"


def execute_stages(
    ctx: RunContext, stages: Mapping[str, StageFn], lock: RunLock, stop: threading.Event
) -> tuple[str, str | None]:
    """Run the stages in order, recording each; the first failure stops the rest. Returns the run's (status, error).

    Each stage gets its own limit, cut to what is left of the run's (settings.run_timeout_seconds).
    """
    names = list(stages)
    run_deadline = time.monotonic() + ctx.settings.run_timeout_seconds

    def cancelled() -> str | None:
        by = cancel_requested(ctx.wh, ctx.run_id)
        return None if by is None else f"was cancelled by {by}"

    for i, name in enumerate(names):
        if stop.is_set():
            return "interrupted", f"interrupted: shutdown requested; not run: {', '.join(names[i:])}"
        if (why := cancelled()) is not None:
            return "cancelled", f"run {why}; not run: {', '.join(names[i:])}"
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
        result, error, attempts = call_with_timeout(stages[name], ctx, name, stop, limit, cancelled)
        if error is not None:
            message, status = _message_of(error), _status_of(error)
            finish_stage(ctx.wh, ctx.run_id, name, status, attempts, error=message)
            log.error("run %s: %s %s: %s", ctx.run_id, name, status.replace("_", " "), message)
            return status, f"{name} {status.replace('_', ' ')}: {message}"
        result = result if result is not None else StageResult()
        finish_stage(ctx.wh, ctx.run_id, name, "succeeded", attempts, result.rows_in, result.rows_out, note=result.note)
        ctx.results[name] = result
    return "succeeded", None
