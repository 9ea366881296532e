"""Prometheus metrics on a per-app registry: HTTP requests and latency per route template,
points/bytes/pending operations per collection (read at scrape time), and the durations of
training, index builds and checkpoints (the service's Telemetry)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10)
LONG_BUCKETS = (0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
EVENTS = ("training", "index_build", "checkpoint")


class Metrics:
    """The metrics of one app (two apps in one process never share a registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "pith_http_requests",
            "HTTP requests",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "pith_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.durations = {
            event: Histogram(
                f"pith_{event}_duration_seconds",
                f"{event.replace('_', ' ')} duration",
                ["collection"],
                buckets=LONG_BUCKETS,
                registry=self.registry,
            )
            for event in EVENTS
        }
        self.routed = Counter(
            "pith_searches_routed",
            "searches by where they were answered: a search process the server sent them to, a "
            "search process that owns the client's connection, or the server process's own "
            "search threads",
            ["to"],
            registry=self.registry,
        )
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one request (label children cached: this runs per request)."""
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(method, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe(self, event: str, collection: str, seconds: float) -> None:
        """Telemetry: record a training, index-build or checkpoint duration."""
        histogram = self.durations.get(event)
        if histogram is not None:
            histogram.labels(collection).observe(seconds)

    def watch(self, infos: Callable[[], list[dict[str, Any]]]) -> None:
        """Report per-collection gauges from `infos()` at every scrape."""
        self.registry.register(_CollectionGauges(infos))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _CollectionGauges:
    def __init__(self, infos: Callable[[], list[dict[str, Any]]]) -> None:
        self._infos = infos

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        gauges = {
            "points": GaugeMetricFamily(
                "pith_collection_points", "points stored", labels=["collection"]
            ),
            "indexed_points": GaugeMetricFamily(
                "pith_collection_indexed_points", "points in the index", labels=["collection"]
            ),
            "bytes_in_ram": GaugeMetricFamily(
                "pith_collection_bytes_in_ram", "index bytes in RAM", labels=["collection"]
            ),
            "bytes_on_disk": GaugeMetricFamily(
                "pith_collection_bytes_on_disk",
                "store and index bytes on disk",
                labels=["collection"],
            ),
            "pending_operations": GaugeMetricFamily(
                "pith_collection_pending_operations",
                "writes queued, not yet applied",
                labels=["collection"],
            ),
        }
        for info in self._infos():
            for key, family in gauges.items():
                family.add_metric([info["name"]], float(info[key]))
        yield from gauges.values()


class RequestMetrics:
    """Pure ASGI middleware: count and time requests by method and route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - start
            self.metrics.request_done(scope.get("method", ""), route, status["code"], elapsed)
