"""The daemon's heartbeat (ops.scheduler_heartbeats) and what it says of the scheduler: ok, late, dead or none."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fares.config.settings import Settings
from fares.config.warehouse import Warehouse
from fares.ops import runs

SchedulerStatus = Literal["ok", "late", "dead", "none"]


@dataclass(frozen=True)
class Heartbeat:
    """The newest beat of a daemon process, and how long ago the database saw it."""

    host: str
    pid: int
    started_at: datetime
    beat_at: datetime
    next_run_at: datetime | None
    seconds_since_beat: float


@dataclass(frozen=True)
class SchedulerHealth:
    """What the heartbeat and the run records say of the scheduler.

    `none`: no daemon ever beat on this database (an API-only or CLI-only setup); `dead`: no beat for
    heartbeat_timeout_seconds; `late`: it beats, but no run succeeded for alert_stale_hours; else `ok`.
    """

    status: SchedulerStatus
    reason: str | None
    heartbeat: Heartbeat | None


def write_beat(wh: Warehouse, started_at: datetime, next_run_at: datetime | None) -> None:
    """Record that this daemon process is alive now, and when its schedule fires next."""
    with wh.connect(autocommit=True) as conn:
        conn.execute(
            "insert into ops.scheduler_heartbeats (host, pid, started_at, beat_at, next_run_at)"
            " values (%s, %s, %s, now(), %s) on conflict (host, pid) do update"
            " set started_at = excluded.started_at, beat_at = excluded.beat_at, next_run_at = excluded.next_run_at",
            (socket.gethostname(), os.getpid(), started_at, next_run_at),
        )


def latest_beat(wh: Warehouse, host: str | None = None) -> Heartbeat | None:
    """The newest heartbeat of any daemon, or of one on `host` (a container's healthcheck asks for its own); None
    when no such daemon ever beat here."""
    with wh.connect(autocommit=True) as conn:
        row = conn.execute(
            "select host, pid, started_at, beat_at, next_run_at, extract(epoch from now() - beat_at)::float8"
            " from ops.scheduler_heartbeats where %s::text is null or host = %s order by beat_at desc limit 1",
            (host, host),
        ).fetchone()
    return None if row is None else Heartbeat(*row)


def assess_scheduler(settings: Settings, wh: Warehouse) -> SchedulerHealth:
    """The scheduler's state from its newest heartbeat and the newest successful run."""
    beat = latest_beat(wh)
    if beat is None:
        return SchedulerHealth("none", None, None)
    if beat.seconds_since_beat > settings.heartbeat_timeout_seconds:
        reason = (
            f"no heartbeat for {beat.seconds_since_beat:.0f} s (limit FARES_HEARTBEAT_TIMEOUT_SECONDS="
            f"{settings.heartbeat_timeout_seconds:g}); last from pid {beat.pid} on {beat.host}"
        )
        return SchedulerHealth("dead", reason, beat)
    success = runs.last_success(wh)  # before any success: counted from the first run, as the stale alert counts
    if success is not None and success[1] > settings.alert_stale_hours * 3600:
        reason = (
            f"no successful run for {success[1] / 3600:.1f} h (limit FARES_ALERT_STALE_HOURS="
            f"{settings.alert_stale_hours:g})"
        )
        return SchedulerHealth("late", reason, beat)
    return SchedulerHealth("ok", None, beat)
