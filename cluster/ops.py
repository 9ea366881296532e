"""What travels between ingress, leaders and replicas: write operations, acknowledgements
and domain errors as values. Light on purpose (no numpy, torch or faiss at import), so the
leader and metadata actors start fast and never load the index libraries."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from core.errors import PithError

if TYPE_CHECKING:
    from server.service.filters import Filter
    from server.service.vectors import Vectors


@dataclass(frozen=True)
class Failed:
    """A domain error raised on a replica, carried back to be raised on the caller."""

    error: PithError


@dataclass(frozen=True)
class Ack:
    """A replica's acknowledgement of a write (`WriteResult`'s fields)."""

    seq: int
    status: str
    count: int


@dataclass(frozen=True)
class UpsertOp:
    keys: list[str]
    vectors: Vectors
    payloads: list[dict[str, Any] | None]
    wait: bool


@dataclass(frozen=True)
class DeleteOp:
    keys: list[str] | None
    filter: Filter | None
    wait: bool


WriteOp = UpsertOp | DeleteOp


def unwrap(value: Any) -> Any:
    """The value, or the domain error it carries raised."""
    if isinstance(value, Failed):
        raise value.error
    return value
