"""pith_client: the Python SDK of pith (a vector search server with compressed indexes).

`Client` (sync) and `AsyncClient` (asyncio) talk to a server over HTTP, or run the engine
in-process with `path=` (embedded mode); both raise the classes of `pith_client.errors`."""

from pith_client.aio import AsyncClient
from pith_client.client import Client
from pith_client.errors import (
    Conflict,
    ConnectionFailed,
    InvalidInput,
    InvalidSpec,
    NotFound,
    NotTrained,
    PithError,
    Unavailable,
)
from pith_client.models import CollectionInfo, Hit, Point, ScrollPage, SnapshotInfo, WriteResult

__all__ = [
    "AsyncClient",
    "Client",
    "CollectionInfo",
    "Conflict",
    "ConnectionFailed",
    "Hit",
    "InvalidInput",
    "InvalidSpec",
    "NotFound",
    "NotTrained",
    "PithError",
    "Point",
    "ScrollPage",
    "SnapshotInfo",
    "Unavailable",
    "WriteResult",
]
__version__ = "0.1.0"
