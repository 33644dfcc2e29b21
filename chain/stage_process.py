"""One stage attempt in its own process: forked from the chain's process, in its own process group, its database
sessions tagged with the run and stage (libpq's PGAPPNAME), its result or failure sent back through a pipe.

At the stage's limit, or when the run is cancelled, the child gets SIGTERM (it stops dbt with SIGINT, or unwinds),
then, after the grace period, its whole process group gets SIGKILL; the run's sessions still in PostgreSQL are then
terminated. Only after that does the chain record the stage and release the lock. The stage's memory goes with it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import socket
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fares.chain.failures import Failure, StageFailed, StageStopped, failure_of
from fares.config.warehouse import Warehouse
from fares.ops.runs import set_stage_pid, stage_processes

if TYPE_CHECKING:
    from fares.chain.context import RunContext, StageFn, StageResult

log = logging.getLogger(__name__)

CANCEL_POLL_SECONDS = 2.0  # how often the chain asks ops whether the run was cancelled
_running: dict[str, int] = {}  # the stage child this process waits for (pid), for a forced stop of the daemon


def app_name(run_id: int, stage: str) -> str:
    """The application_name of a stage's database sessions (PostgreSQL keeps 63 characters)."""
    return f"fares:run{run_id}:{stage}"[:63]


def _die_with_parent() -> None:
    """Linux: SIGTERM this process when the chain's process dies (kill -9 of the daemon), so no stage runs on alone."""
    import ctypes
    import ctypes.util

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _child(fn: StageFn, ctx: RunContext, name: str, out: int) -> None:
    """The child's whole life: run the stage, send (ok, result) or (failed, Failure), exit without cleanup."""
    os.setsid()
    _die_with_parent()
    os.environ["PGAPPNAME"] = app_name(ctx.run_id, name)  # libpq: psycopg, dlt's adbc, GX's psycopg2 and dbt
    if ctx.wh.statement_timeout_ms:  # the same statement_timeout for the sessions libpq opens without our conninfo
        os.environ["PGOPTIONS"] = f"-c statement_timeout={ctx.wh.statement_timeout_ms}"

    def on_term(signum: int, frame: Any) -> None:
        if ctx.cancel:  # dbt: SIGINT lets it cancel its queries and report; its exit then ends the stage
            for cancel in list(ctx.cancel):
                cancel()
            return
        raise StageStopped(f"{name} was stopped (signal {signum})")

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is the chain's to handle, not the stage's
    try:
        payload: tuple[str, Any] = ("ok", fn(ctx))
    except BaseException as exc:  # noqa: BLE001 - everything goes back to the chain, which records it
        log.debug("stage %s failed in its process:\n%s", name, traceback.format_exc())
        payload = ("failed", failure_of(exc))
    try:
        data = pickle.dumps(payload)
    except Exception:  # noqa: BLE001 - a result that cannot cross (a live handle): keep its counts
        result = payload[1]
        data = pickle.dumps(("ok", type(result)(None, result.rows_in, result.rows_out)))
    with contextlib.suppress(BrokenPipeError):
        while data:
            data = data[os.write(out, data) :]
    os._exit(0)


def _stop(pid: int, grace: float) -> None:
    """SIGTERM to the child, then SIGKILL to its whole process group after `grace` seconds; reap it."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0]:
                break
        except ChildProcessError:  # reaped already (by the thread that waits for the stage)
            break
        time.sleep(0.1)
    else:
        log.warning("stage process %d still alive %.0f s after SIGTERM: killing its process group", pid, grace)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # whatever the stage started and left behind (a JVM, a worker)


def terminate_sessions(ctx: RunContext, name: str) -> int:
    """Terminate the stage's sessions still in PostgreSQL (by application_name); returns how many."""
    return _terminate(ctx.wh, app_name(ctx.run_id, name))


def _terminate(wh: Warehouse, pattern: str) -> int:
    with wh.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select pg_terminate_backend(pid) from pg_stat_activity where application_name like %s"
            " and pid <> pg_backend_pid()",
            (pattern,),
        ).fetchall()
    if rows:
        log.warning("terminated %d database session(s) left by %s", len(rows), pattern)
    return len(rows)


def clean_up_after_crash(wh: Warehouse, run_ids: list[int]) -> None:
    """What crashed runs left behind: their stages' processes on this host (killed) and their database sessions."""
    here = socket.gethostname()
    for run_id, stage, pid, host in stage_processes(wh, run_ids):
        if host == here and _is_ours(pid):
            log.warning("run %s: killing the process group of its %s stage (pid %d)", run_id, stage, pid)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
    for run_id in run_ids:
        _terminate(wh, f"fares:run{run_id}:%")


def _is_ours(pid: int) -> bool:
    """The process group still led by a fares stage (a Python process), not a reused pid."""
    try:
        return os.getpgid(pid) == pid and b"python" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ProcessLookupError):
        return False


def stop_running_stage(grace: float = 5.0) -> None:
    """Stop the stage child this process waits for, if any (a forced shutdown)."""
    pid = _running.get("pid")
    if pid:
        _stop(pid, grace)


def run_in_process(fn: StageFn, ctx: RunContext, name: str, should_stop: Callable[[], str | None]) -> StageResult:
    """Run one attempt of stage `name` in a child process until it ends, its deadline passes or `should_stop` says why
    it must stop (e.g. "was cancelled by alice"); raises StageFailed with the child's failure, or StageStopped."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child; it never returns
        os.close(read)
        try:
            _child(fn, ctx, name, write)
        finally:
            os._exit(70)
    os.close(write)
    _running["pid"] = pid
    set_stage_pid(ctx.wh, ctx.run_id, name, pid)
    chunks: list[bytes] = []
    why: str | None = None
    asked_at = time.monotonic()
    try:
        while True:
            ready, _, _ = select.select([read], [], [], 0.5)
            if ready:
                chunk = os.read(read, 1 << 16)
                if not chunk:
                    break
                chunks.append(chunk)
                continue
            left = ctx.remaining()
            if left is not None and left <= 0:
                why = "timeout"
            elif time.monotonic() - asked_at >= CANCEL_POLL_SECONDS:
                why, asked_at = should_stop(), time.monotonic()
            if why:
                break
    except BaseException:  # Ctrl+C in `fares run`, or the chain's own bookkeeping failed: the stage goes too
        _stop(pid, ctx.settings.stage_grace_seconds)
        raise
    finally:
        os.close(read)
        _running.pop("pid", None)
    if why:
        _stop(pid, ctx.settings.stage_grace_seconds)
        terminate_sessions(ctx, name)
        if why == "timeout":
            raise StageStopped(f"{name} timed out after {ctx.limit or 0:.0f} s", timed_out=True)
        raise StageStopped(f"{name} {why}", cancelled=True)
    status = -1
    with contextlib.suppress(ChildProcessError):
        _, status = os.waitpid(pid, 0)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # anything the finished stage left running in its group
    terminate_sessions(ctx, name)
    if not chunks:
        raise StageFailed(Failure(f"{name}: its process died (exit status {status})", False, False))
    kind, value = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's bytes, through our own pipe
    if kind == "failed":
        raise StageFailed(value)
    return value
