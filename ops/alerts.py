"""Alerts through apprise: one message per event (failed, crashed or timed-out run, quality gate, model not promoted,
lock held too long, no success for too long, the scheduler's heartbeat missing), then one "recovered" message when a
later run succeeds (or, for the scheduler, when it beats again).

Every alert is also kept in ops.alerts; an alert of a problem stays open until a run succeeds, which closes it.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.ops import heartbeat, runs
from fares.ops.heartbeat import SchedulerHealth
from fares.ops.render import format_run
from fares.ops.runs import RunRecord

log = logging.getLogger(__name__)

PROBLEMS = ("run_failed", "run_crashed", "run_timed_out", "quality_gate_failed", "lock_held", "stale")
# Not a run's problem: opened by whoever sees the heartbeat missing (the API), closed by the next heartbeat.
SCHEDULER_DEAD = "scheduler_dead"
SCHEDULER_DEAD_TITLE = "fares: the scheduler is not running"
_DEAD_HINT = "No scheduled run starts until the daemon (`fares schedule`) is back; quotes keep working."


def send(settings: Settings, title: str, body: str, failure: bool = True) -> bool:
    """Deliver one message to every FARES_ALERT_URLS target; True when all of them took it."""
    if not settings.alert_urls:
        log.info("alert (no FARES_ALERT_URLS set): %s", title)
        return False
    import apprise

    notifier = apprise.Apprise()
    for url in settings.alert_urls:
        if not notifier.add(url):
            log.error("alert URL not understood by apprise: %s", url.split("://", 1)[0] + "://...")
    kind = apprise.NotifyType.FAILURE if failure else apprise.NotifyType.SUCCESS
    delivered = bool(notifier.notify(title=title, body=body, notify_type=kind))
    if not delivered:
        log.error("alert not delivered to every target: %s", title)
    return delivered


def _open_problems(wh: Warehouse) -> list[dict[str, Any]]:
    with wh.connect() as conn:
        cur = conn.execute(
            "select alert_id, event, run_id from ops.alerts where resolved_at is null and event = any(%s)",
            (list(PROBLEMS),),
        )
        return [{"alert_id": a, "event": e, "run_id": r} for a, e, r in cur.fetchall()]


def raise_alert(
    settings: Settings, wh: Warehouse, event: str, title: str, body: str, run_id: int | None = None
) -> None:
    """Send and record one alert; a problem stays open until a run succeeds, other events close at once."""
    delivered = send(settings, title, body, failure=event in PROBLEMS or event == "model_not_promoted")
    with wh.connect() as conn:
        conn.execute(
            "insert into ops.alerts (event, run_id, title, body, delivered, resolved_at)"
            " values (%s, %s, %s, %s, %s, case when %s then null else now() end)",
            (event, run_id, title, body[:8000], delivered, event in PROBLEMS),
        )


def _already(wh: Warehouse, event: str, run_id: int | None) -> bool:
    """True when this event was alerted: for a run, ever; without one (stale), while still open."""
    where = "run_id = %s" if run_id is not None else "run_id is null and resolved_at is null and %s::bigint is null"
    with wh.connect() as conn:
        sql = f"select 1 from ops.alerts where event = %s and {where}"  # noqa: S608 - `where` is one of two constants
        row = conn.execute(sql, (event, run_id)).fetchone()
    return row is not None


def after_run(settings: Settings, wh: Warehouse, run: RunRecord, kept_model: str | None = None) -> None:
    """The alerts one finished run calls for (never raises: alerting must not fail the run).

    `kept_model`: why the run's retrained model was not published (None when it was, or none was trained).
    """
    try:
        _after_run(settings, wh, run, kept_model)
    except Exception:
        log.exception("alerting after run %s failed", run.run_id)


def _after_run(settings: Settings, wh: Warehouse, run: RunRecord, kept_model: str | None) -> None:
    run_id, status, failed_stage = run.run_id, run.status, run.failed_stage
    body = format_run(run)  # the same text as `fares runs show` and the run's page
    if status == "failed" and failed_stage == "validate":
        raise_alert(settings, wh, "quality_gate_failed", f"fares: quality gate failed (run {run_id})", body, run_id)
    elif status == "failed":
        raise_alert(settings, wh, "run_failed", f"fares: run {run_id} failed at {failed_stage}", body, run_id)
    elif status == "timed_out":
        raise_alert(settings, wh, "run_timed_out", f"fares: run {run_id} timed out at {failed_stage}", body, run_id)
    elif status == "skipped":
        _lock_held(settings, wh, run)
    elif status == "succeeded":
        if kept_model is not None:
            raise_alert(
                settings, wh, "model_not_promoted", f"fares: run {run_id} kept the current model", kept_model, run_id
            )
        resolve(settings, wh, run)


def _lock_held(settings: Settings, wh: Warehouse, run: RunRecord) -> None:
    holder = runs.running_since(wh)
    if holder is None or holder[1] < settings.run_timeout_seconds or _already(wh, "lock_held", holder[0]):
        return
    hours = holder[1] / 3600
    body = f"{run.error}; it has held the lock for {hours:.1f} h, past FARES_RUN_TIMEOUT_SECONDS"
    raise_alert(
        settings, wh, "lock_held", f"fares: run {holder[0]} holds the run lock for {hours:.1f} h", body, holder[0]
    )


def crashed(settings: Settings, wh: Warehouse, run_ids: list[int]) -> None:
    """One alert per run found left 'running' by a dead process."""
    for run_id in run_ids:
        try:
            body = format_run(runs.get_run(wh, run_id))
            raise_alert(settings, wh, "run_crashed", f"fares: run {run_id} crashed", body, run_id)
        except Exception:
            log.exception("alerting the crash of run %s failed", run_id)


def recovers(problem: RunRecord, success: RunRecord) -> bool:
    """True when `success` did again what failed in `problem`: its failed (or unfinished) stage succeeded with work to
    do (no "nothing to do" note), on the same months where the failed run named months."""
    failed = problem.failed_stage or next((s.stage for s in problem.stages if s.status != "succeeded"), None)
    needed = [failed] if failed else list(problem.stages_requested or [])
    done = {s.stage for s in success.stages if s.status == "succeeded" and not s.note}
    if not set(needed) <= done:
        return False
    return not problem.months or set(problem.months) <= set(success.months or [])


def resolve(settings: Settings, wh: Warehouse, success: RunRecord) -> None:
    """A run succeeded: close the open problems it recovers from (`recovers`; a problem of no run, such as `stale` or
    a held lock, closes on any success) with one "recovered" message; none when nothing closes."""
    closing = []
    for problem in _open_problems(wh):
        if problem["run_id"] is not None and problem["event"] != "lock_held":
            try:
                failed = runs.get_run(wh, problem["run_id"])
            except KeyError:
                failed = None
            if failed is not None and not recovers(failed, success):
                continue
        closing.append(problem)
    if not closing:
        return
    run_id = success.run_id
    what = ", ".join(sorted({p["event"].replace("_", " ") for p in closing}))
    body = f"run {run_id} succeeded; {len(closing)} open alert(s) closed ({what})"
    delivered = send(settings, f"fares: recovered (run {run_id})", body, failure=False)
    with wh.connect() as conn:
        conn.execute(
            "update ops.alerts set resolved_at = now() where alert_id = any(%s)", ([p["alert_id"] for p in closing],)
        )
        conn.execute(
            "insert into ops.alerts (event, run_id, title, body, delivered, resolved_at)"
            " values ('recovered', %s, %s, %s, %s, now())",
            (run_id, f"fares: recovered (run {run_id})", body, delivered),
        )


def check_stale(settings: Settings, wh: Warehouse) -> bool:
    """Alert once when no run succeeded for FARES_ALERT_STALE_HOURS (counted from the first run before any success)."""
    last = runs.last_success(wh)
    if last is None or last[1] < settings.alert_stale_hours * 3600 or _already(wh, "stale", None):
        return False
    at, seconds = last
    return raise_once(
        settings,
        wh,
        "stale",
        f"fares: no successful run for {seconds / 3600:.1f} h",
        f"the last successful run finished at {at:%Y-%m-%d %H:%M %Z} (limit FARES_ALERT_STALE_HOURS="
        f"{settings.alert_stale_hours:g})",
    )


def raise_once(settings: Settings, wh: Warehouse, event: str, title: str, body: str) -> bool:
    """Send a run-less problem (`stale`, `scheduler_dead`) unless one is open; True when this call sent it.

    The alert row is claimed before sending: of the processes that check at once (daemons, API workers), the one whose
    insert the unique index lets through sends; the others see the open alert and stay quiet.
    """
    with wh.connect() as conn:
        row = conn.execute(
            "insert into ops.alerts (event, title, body, delivered) values (%s, %s, %s, false)"
            " on conflict (event) where resolved_at is null and run_id is null"
            " and event in ('stale', 'scheduler_dead') do nothing returning alert_id",
            (event, title, body[:8000]),
        ).fetchone()
    if row is None:
        return False
    delivered = send(settings, title, body)
    with wh.connect() as conn:
        conn.execute("update ops.alerts set delivered = %s where alert_id = %s", (delivered, row[0]))
    return True


def check_scheduler(settings: Settings, wh: Warehouse) -> SchedulerHealth:
    """The scheduler's health; alert once when it is dead (no heartbeat) or late (no success), so a dead daemon is
    noticed by another process (the API). The next heartbeat closes `scheduler_dead`, the next success `stale`."""
    health = heartbeat.assess_scheduler(settings, wh)
    if health.status == "dead" and health.reason is not None:
        raise_once(settings, wh, SCHEDULER_DEAD, SCHEDULER_DEAD_TITLE, f"{health.reason}. {_DEAD_HINT}")
    elif health.status == "late":
        check_stale(settings, wh)
    return health


def scheduler_back(settings: Settings, wh: Warehouse) -> bool:
    """A heartbeat was written: close an open `scheduler_dead` with one "recovered" message; True when one was open."""
    host, pid = socket.gethostname(), os.getpid()
    with wh.connect() as conn:
        closed = conn.execute(
            "update ops.alerts set resolved_at = now() where event = %s and resolved_at is null returning alert_id",
            (SCHEDULER_DEAD,),
        ).fetchall()
    if not closed:
        return False
    title, body = "fares: recovered (the scheduler beats again)", f"heartbeat from pid {pid} on {host}"
    delivered = send(settings, title, body, failure=False)
    with wh.connect() as conn:
        conn.execute(
            "insert into ops.alerts (event, title, body, delivered, resolved_at)"
            " values ('recovered', %s, %s, %s, now())",
            (title, body, delivered),
        )
    return True
