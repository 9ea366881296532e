"""`AsyncClient`: the asyncio twin of `Client` (same calls, awaited), over httpx.AsyncClient
or embedded (the in-process engine, run in worker threads).

>>> import asyncio, tempfile
>>> import numpy as np
>>> from pith_client import AsyncClient
>>> async def demo(path: str) -> list[int]:
...     async with AsyncClient(path=path) as client:
...         await client.create_collection("docs", dim=3)
...         await client.upload("docs", None, np.eye(3), parallel=2, batch_size=1)
...         return [h.id for h in await client.search("docs", [0, 0, 1], k=1)]
>>> with tempfile.TemporaryDirectory() as tmp:
...     asyncio.run(demo(tmp))
[2]
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

from pith_client import calls
from pith_client.calls import Call, Filter
from pith_client.client import DEFAULT_URL
from pith_client.errors import PithError
from pith_client.models import CollectionInfo, Hit, Point, PointId, SnapshotInfo, WriteResult
from pith_client.transport import AsyncHttpTransport, RetryPolicy
from pith_client.upload import Batch, UploadPlan, progress_bar

T = TypeVar("T")


class _ThreadedEmbedded:
    """The embedded transport behind an async face: each call runs in a worker thread."""

    def __init__(self, path: str | Path, embedders: Any) -> None:
        from pith_client.embedded import EmbeddedTransport

        self.inner = EmbeddedTransport(path, embedders)
        self.retried = 0

    async def execute(self, call: Call[T], retries: int | None = None) -> Any:
        return await asyncio.to_thread(self.inner.execute, call)

    async def close(self) -> None:
        await asyncio.to_thread(self.inner.close)


class AsyncClient:
    """See `Client` (same arguments; every method is a coroutine, scroll an async iterator)."""

    def __init__(
        self,
        url: str | None = None,
        *,
        path: str | Path | None = None,
        api_key: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 3,
        backoff_s: float = 0.25,
        embedders: Any = None,
    ) -> None:
        if url is not None and path is not None:
            raise ValueError("give url (a server) or path (embedded), not both")
        self.transport: Any
        if path is not None:
            self.transport = _ThreadedEmbedded(path, embedders)
        else:
            policy = RetryPolicy(retries, backoff_s)
            self.transport = AsyncHttpTransport(url or DEFAULT_URL, api_key, timeout_s, policy)

    async def _run(self, call: Call[T], retries: int | None = None) -> T:
        return call.parse(await self.transport.execute(call, retries))

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def wait_ready(self, timeout_s: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            try:
                await self._run(calls.readiness(), retries=0)
                return
            except PithError:
                if loop.time() > deadline:
                    raise
                await asyncio.sleep(0.1)

    # collections ---------------------------------------------------------------------------
    async def create_collection(
        self, name: str, spec: Mapping[str, Any] | None = None, **fields: Any
    ) -> CollectionInfo:
        return await self._run(calls.create_collection(name, {**(spec or {}), **fields}))

    async def list_collections(self) -> list[str]:
        return await self._run(calls.list_collections())

    async def get_collection(self, name: str) -> CollectionInfo:
        return await self._run(calls.get_collection(name))

    async def delete_collection(self, name: str) -> None:
        await self._run(calls.delete_collection(name))

    async def train(self, name: str, wait: bool = True) -> str:
        return await self._run(calls.train(name, wait))

    # points --------------------------------------------------------------------------------
    async def upsert(
        self,
        collection: str,
        ids: Any,
        vectors: Any,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        wait: bool = True,
    ) -> WriteResult:
        return await self._run(calls.upsert(collection, ids, vectors, payloads, wait))

    async def upload(
        self,
        collection: str,
        ids: Any,
        vectors: Any,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        batch_size: int = 1024,
        parallel: int = 1,
        wait: bool = True,
        max_retries: int = 8,
        progress: bool | None = None,
    ) -> int:
        """See `Client.upload`: `parallel` batches in flight on the event loop."""
        plan = UploadPlan(ids, vectors, payloads, batch_size)
        batches = plan.batches()
        with progress_bar(plan.total, progress) as bar:

            async def worker() -> int:
                written = 0
                for batch in batches:  # shared iterator: each batch goes to one worker
                    written += await self._send(collection, batch, wait, max_retries)
                    bar.update(len(batch))
                return written

            counts = await asyncio.gather(*(worker() for _ in range(max(1, parallel))))
        return sum(counts)

    async def _send(self, collection: str, batch: Batch, wait: bool, retries: int) -> int:
        call = calls.upsert(collection, batch.ids, batch.vectors, batch.payloads, wait)
        return (await self._run(call, retries=retries)).count

    async def get(self, collection: str, point_id: PointId, with_vector: bool = False) -> Point:
        return await self._run(calls.get_point(collection, point_id, with_vector))

    async def delete(
        self,
        collection: str,
        ids: Any | None = None,
        *,
        filter: Filter | None = None,
        wait: bool = True,
    ) -> WriteResult:
        return await self._run(calls.delete_points(collection, ids, filter, wait))

    async def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> AsyncIterator[Point]:
        cursor: str | None = None
        while True:
            call = calls.scroll(collection, filter, batch_size, cursor, with_payload, with_vectors)
            page = await self._run(call)
            for point in page.points:
                yield point
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def count(self, collection: str, filter: Filter | None = None) -> int:
        return await self._run(calls.count(collection, filter))

    # search --------------------------------------------------------------------------------
    async def search(
        self,
        collection: str,
        vector: Any = None,
        *,
        text: str | None = None,
        k: int = 10,
        filter: Filter | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> list[Hit]:
        body = calls.search_body(vector, text, k, filter, with_payload, with_vectors, params)
        return await self._run(calls.search(collection, body))

    async def search_batch(
        self,
        collection: str,
        vectors: Any,
        *,
        k: int = 10,
        filter: Filter | None = None,
        with_payload: bool = True,
        with_vectors: bool = False,
        params: Mapping[str, Any] | None = None,
    ) -> list[list[Hit]]:
        bodies = [
            calls.search_body(v, None, k, filter, with_payload, with_vectors, params)
            for v in vectors
        ]
        return await self._run(calls.search_batch(collection, bodies))

    # snapshots -----------------------------------------------------------------------------
    async def create_snapshot(self, collection: str) -> SnapshotInfo:
        return await self._run(calls.create_snapshot(collection))

    async def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        return await self._run(calls.list_snapshots(collection))

    async def restore_snapshot(self, collection: str, snapshot: str) -> CollectionInfo:
        return await self._run(calls.restore_snapshot(collection, snapshot))

    async def delete_snapshot(self, collection: str, snapshot: str) -> None:
        await self._run(calls.delete_snapshot(collection, snapshot))

    async def download_snapshot(self, collection: str, snapshot: str, target: str | Path) -> Path:
        return await self._run(calls.download_snapshot(collection, snapshot, Path(target)))

    async def upload_snapshot(self, collection: str, tarball: str | Path) -> CollectionInfo:
        return await self._run(calls.upload_snapshot(collection, Path(tarball)))
