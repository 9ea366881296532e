"""How the service reports durations without knowing about Prometheus (the server's metrics
implement this protocol; tests and embedded use take the silent default)."""

from __future__ import annotations

from typing import Protocol


class Telemetry(Protocol):
    def observe(self, event: str, collection: str, seconds: float) -> None:
        """Record a duration: event is "training", "index_build" or "checkpoint"."""


class Silent:
    """Telemetry that records nothing."""

    def observe(self, event: str, collection: str, seconds: float) -> None:
        return None
