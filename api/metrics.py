"""Prometheus metrics of one app (its own registry, so several apps in one process never clash) and the ASGI timer."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)


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
