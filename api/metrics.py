"""Prometheus metrics of one app (its own registry, so several apps in one process never clash), the ASGI timer, and
the pipeline's figures read from schema ops (`PipelineWatch`), which /metrics and /health show."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fares.config.settings import Settings

if TYPE_CHECKING:
    from fares.api.database import Database
    from fares.ops.health import PipelineHealth
    from fares.ops.heartbeat import SchedulerHealth
    from fares.ops.ledger import MonthRows

log = logging.getLogger(__name__)

_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """The counters and histograms the API exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "fares_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "fares_http_request_duration_seconds",
            "HTTP request latency by route",
            ["method", "route"],
            buckets=_BUCKETS,
            registry=self.registry,
        )
        self.quotes = Counter(
            "fares_quotes", "Trips priced, by which service came out cheaper", ["cheaper"], registry=self.registry
        )
        self.quote_errors = Counter(
            "fares_quote_rejections", "Trips refused (bad place or time)", registry=self.registry
        )
        self.quote_batch = Histogram(
            "fares_quote_batch_size",
            "Single quotes priced together in one model call",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
            registry=self.registry,
        )
        self.model_loaded = Gauge("fares_model_loaded", "1 when a model is in service", registry=self.registry)
        self.model_info = Gauge("fares_model_info", "The model version in service", ["version"], registry=self.registry)
        self.model_reloads = Gauge("fares_model_loads", "Models put into service since start", registry=self.registry)

    def render(self, pipeline: PipelineView | None = None, model_age_seconds: float | None = None) -> bytes:
        """The text exposition format: the API's own metrics, then the pipeline's as read just now."""
        return generate_latest(self.registry) + generate_latest(pipeline_registry(pipeline, model_age_seconds))


@dataclass(frozen=True)
class PipelineView:
    """What the API read of the pipeline from schema ops at one moment."""

    health: PipelineHealth
    scheduler: SchedulerHealth
    rows_loaded: list[MonthRows]


def _ts(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


def pipeline_registry(view: PipelineView | None, model_age_seconds: float | None) -> CollectorRegistry:
    """A registry of this moment's pipeline gauges (built per scrape, so a stage or month that went leaves no stale
    series). Without a view (database unreachable) only `fares_pipeline_readable 0` and the model's age."""
    reg = CollectorRegistry()
    Gauge("fares_pipeline_readable", "1 when schema ops could be read for these figures", registry=reg).set(
        0 if view is None else 1
    )
    if model_age_seconds is not None:
        Gauge("fares_model_age_seconds", "Seconds since the model in service was trained", registry=reg).set(
            model_age_seconds
        )
    if view is None:
        return reg
    _pipeline_gauges(view, reg)
    _scheduler_gauges(view.scheduler, reg)
    loaded = Gauge(
        "fares_rows_loaded", "Trip rows loaded per month and kind (the ingest ledger)", ["month", "kind"], registry=reg
    )
    for row in view.rows_loaded:
        loaded.labels(row.month, row.kind).set(row.rows)
    return reg


def _pipeline_gauges(view: PipelineView, reg: CollectorRegistry) -> None:
    health = view.health
    run_success = Gauge(
        "fares_pipeline_last_success_timestamp_seconds", "When a run of the chain last succeeded", registry=reg
    )
    run_status = Gauge(
        "fares_pipeline_last_run_status", "1 for the status of the newest run (not skipped)", ["status"], registry=reg
    )
    run_seconds = Gauge("fares_pipeline_last_run_duration_seconds", "How long the newest run took", registry=reg)
    if (at := _ts(health.last_success_at)) is not None:
        run_success.set(at)
    if health.last_status is not None:
        run_status.labels(health.last_status).set(1)
    if health.last_seconds is not None:
        run_seconds.set(health.last_seconds)
    success = Gauge(
        "fares_stage_last_success_timestamp_seconds", "When each stage last succeeded", ["stage"], registry=reg
    )
    status = Gauge(
        "fares_stage_last_run_status", "1 for the status of each stage's newest run", ["stage", "status"], registry=reg
    )
    seconds = Gauge(
        "fares_stage_last_run_duration_seconds", "How long each stage's newest run took", ["stage"], registry=reg
    )
    for stage in health.stages:
        if (at := _ts(stage.last_success_at)) is not None:
            success.labels(stage.stage).set(at)
        status.labels(stage.stage, stage.last_status).set(1)
        if stage.last_seconds is not None:
            seconds.labels(stage.stage).set(stage.last_seconds)


def _scheduler_gauges(scheduler: SchedulerHealth, reg: CollectorRegistry) -> None:
    beat = scheduler.heartbeat
    if beat is None:  # no daemon ever beat here: no series, so `absent()` rules can tell
        return
    Gauge("fares_scheduler_heartbeat_timestamp_seconds", "The daemon's newest heartbeat", registry=reg).set(
        beat.beat_at.timestamp()
    )
    Gauge(
        "fares_scheduler_up", "1 while the daemon's heartbeat is within FARES_HEARTBEAT_TIMEOUT_SECONDS", registry=reg
    ).set(0 if scheduler.status == "dead" else 1)
    if beat.next_run_at is not None:
        Gauge("fares_scheduler_next_run_timestamp_seconds", "When the schedule fires next", registry=reg).set(
            beat.next_run_at.timestamp()
        )


class PipelineWatch:
    """Reads the pipeline's figures from schema ops at most every `ttl` seconds and, on each read, checks the
    scheduler's heartbeat, alerting once when it is dead or late (fares.ops.alerts.check_scheduler): whoever asks
    /health or /metrics (compose's healthcheck, Prometheus) makes the API notice a dead daemon. Never raises; quotes
    never wait for it."""

    def __init__(self, settings: Settings, db: Database, ttl: float = 5.0) -> None:
        self.settings, self.db, self.ttl = settings, db, ttl
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._view: PipelineView | None = None
        self.error: str | None = "not read yet"

    def fresh(self) -> bool:
        """True while the last read is young enough to return without I/O."""
        return time.monotonic() - self._read_at < self.ttl

    def view(self) -> PipelineView | None:
        """The figures (cached for `ttl`); None when the database cannot be read (`error` says why)."""
        if self.fresh():
            return self._view
        with self._lock:
            if not self.fresh():
                self._view, self.error = self._read()
                self._read_at = time.monotonic()
            return self._view

    def _read(self) -> tuple[PipelineView | None, str | None]:
        from fares.ops import alerts, health, ledger

        reachable, error = self.db.status()
        if not reachable:
            return None, error
        try:
            wh = self.db.warehouse()
            view = PipelineView(
                health.read_pipeline_health(wh),
                alerts.check_scheduler(self.settings, wh),
                ledger.rows_loaded_per_month(wh),
            )
        except Exception as exc:  # noqa: BLE001 - health and metrics must answer whatever the database does
            log.warning("pipeline figures not read: %s", exc)
            return None, f"{type(exc).__name__}: {exc}"
        return view, None


_created: dict[str, datetime | None] = {}


def model_age_seconds(models_dir: Path, version: str | None) -> float | None:
    """Seconds since `version` was trained (its metrics.json `created_at`, read once per version)."""
    if version is None:
        return None
    if version not in _created:
        from fares.ml.registry import Registry

        try:
            created = Registry(models_dir).metrics(version).get("created_at")
            _created[version] = datetime.fromisoformat(created) if created else None
        except Exception:  # noqa: BLE001 - a bundle without metrics.json: no age, not an error page
            _created[version] = None
    at = _created[version]
    return None if at is None else (datetime.now(UTC) - at).total_seconds()


class MetricsMiddleware:
    """Pure-ASGI timer (cheaper than BaseHTTPMiddleware): counts and times every HTTP request by route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            method = scope.get("method", "")
            self.metrics.requests.labels(method, path, str(status)).inc()
            self.metrics.latency.labels(method, path).observe(time.perf_counter() - started)
