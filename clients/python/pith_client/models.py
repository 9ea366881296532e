"""Typed results, mirroring the server's response bodies; vectors come back as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

PointId = int | str
WriteStatus = Literal["acknowledged", "completed"]


def _vector(raw: Any) -> np.ndarray | None:
    return None if raw is None else np.asarray(raw, dtype=np.float32)


@dataclass(frozen=True)
class Hit:
    """One search result; `score`: inner product (ip/cosine, larger is better), Euclidean
    distance (l2, smaller is better) or Chamfer sum (multi-vector)."""

    id: PointId
    score: float
    payload: dict[str, Any] | None = None
    vector: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Hit:
        return cls(raw["id"], float(raw["score"]), raw.get("payload"), _vector(raw.get("vector")))


@dataclass(frozen=True)
class Point:
    """A stored point; `version` is the operation id of the write that stored it."""

    id: PointId
    version: int
    payload: dict[str, Any] | None = None
    vector: np.ndarray | None = field(default=None, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Point:
        return cls(raw["id"], raw["version"], raw.get("payload"), _vector(raw.get("vector")))


@dataclass(frozen=True)
class WriteResult:
    """`completed`: durable and searchable; `acknowledged` (wait=False): durably logged."""

    operation_id: int
    status: WriteStatus
    count: int

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> WriteResult:
        return cls(raw["operation_id"], raw["status"], raw["count"])


@dataclass(frozen=True)
class ScrollPage:
    points: list[Point]
    next_cursor: str | None

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ScrollPage:
        return cls([Point.from_json(p) for p in raw["points"]], raw["next_cursor"])


@dataclass(frozen=True)
class CollectionInfo:
    """A collection's spec, sizes and training state (`raw` holds the whole body)."""

    name: str
    spec: dict[str, Any]
    points: int
    indexed_points: int
    bytes_in_ram: int
    bytes_on_disk: int
    training: dict[str, Any]
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> CollectionInfo:
        keys = ("name", "spec", "points", "indexed_points", "bytes_in_ram", "bytes_on_disk")
        return cls(**{k: raw[k] for k in keys}, training=raw["training"], raw=raw)


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    size_bytes: int
    created_at: float

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> SnapshotInfo:
        return cls(raw["name"], raw["size_bytes"], raw["created_at"])
