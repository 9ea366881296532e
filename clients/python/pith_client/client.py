"""`Client`: the synchronous SDK, over HTTP (`Client("http://host:8000")`) or embedded
(`Client(path="./data")`: the engine in-process, same calls, same results).

>>> import tempfile
>>> import numpy as np
>>> from pith_client import Client
>>> tmp = tempfile.TemporaryDirectory()
>>> client = Client(path=tmp.name)
>>> client.create_collection("docs", dim=4, metric="cosine").points
0
>>> x = np.eye(4, dtype=np.float32)
>>> client.upload("docs", [10, 11, 12, 13], x, [{"n": i} for i in range(4)])
4
>>> hit = client.search("docs", x[2], k=1)[0]
>>> hit.id, round(hit.score, 3), hit.payload
(12, 1.0, {'n': 2})
>>> client.count("docs", {"must": [{"key": "n", "range": {"gte": 1}}]})
3
>>> [p.id for p in client.scroll("docs", batch_size=3)]
[10, 11, 12, 13]
>>> client.close(); tmp.cleanup()
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, TypeVar

from pith_client import calls
from pith_client.calls import Call, Filter
from pith_client.errors import PithError
from pith_client.models import CollectionInfo, Hit, Point, PointId, SnapshotInfo, WriteResult
from pith_client.transport import HttpTransport, RetryPolicy
from pith_client.upload import Batch, UploadPlan, progress_bar

T = TypeVar("T")
DEFAULT_URL = "http://127.0.0.1:8000"


class Client:
    """pith over HTTP (`url`, optional `api_key`) or embedded (`path`: a data folder).

    Transient failures (connection errors, timeouts, 503) are retried `retries` times with
    exponential backoff from `backoff_s`; server errors raise their class from
    `pith_client.errors` (the same class in embedded mode)."""

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
            from pith_client.embedded import EmbeddedTransport

            self.transport = EmbeddedTransport(path, embedders)
        else:
            policy = RetryPolicy(retries, backoff_s)
            self.transport = HttpTransport(url or DEFAULT_URL, api_key, timeout_s, policy)

    def _run(self, call: Call[T], retries: int | None = None) -> T:
        return call.parse(self.transport.execute(call, retries))

    def close(self) -> None:
        """Close the connection pool (embedded: checkpoint and close the collections)."""
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        """Block until the server has loaded its collections (raises after `timeout_s`)."""
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                self._run(calls.readiness(), retries=0)
                return
            except PithError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    # collections ---------------------------------------------------------------------------
    def create_collection(
        self, name: str, spec: Mapping[str, Any] | None = None, **fields: Any
    ) -> CollectionInfo:
        """Create (idempotent for the same spec) from a spec dict and/or fields (dim=...)."""
        return self._run(calls.create_collection(name, {**(spec or {}), **fields}))

    def list_collections(self) -> list[str]:
        return self._run(calls.list_collections())

    def get_collection(self, name: str) -> CollectionInfo:
        return self._run(calls.get_collection(name))

    def delete_collection(self, name: str) -> None:
        self._run(calls.delete_collection(name))

    def train(self, name: str, wait: bool = True) -> str:
        """Train the collection's encoder and index now; returns the training state."""
        return self._run(calls.train(name, wait))

    # points --------------------------------------------------------------------------------
    def upsert(
        self,
        collection: str,
        ids: Any,
        vectors: Any,
        payloads: Sequence[Mapping[str, Any] | None] | None = None,
        *,
        wait: bool = True,
    ) -> WriteResult:
        """One batch: insert or replace points by id (vectors: (n, dim) or token matrices)."""
        return self._run(calls.upsert(collection, ids, vectors, payloads, wait))

    def upload(
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
        """Upload many points in batches (`parallel` in flight), retrying transient failures
        with backoff (safe: upsert by id); a progress bar on long uploads. Returns the count."""
        plan = UploadPlan(ids, vectors, payloads, batch_size)
        with progress_bar(plan.total, progress) as bar:

            def send(batch: Batch) -> int:
                call = calls.upsert(collection, batch.ids, batch.vectors, batch.payloads, wait)
                done = self._run(call, retries=max_retries).count
                bar.update(len(batch))
                return done

            if parallel <= 1:
                return sum(send(b) for b in plan.batches())
            return _in_threads(send, plan.batches(), parallel)

    def get(self, collection: str, point_id: PointId, with_vector: bool = False) -> Point:
        return self._run(calls.get_point(collection, point_id, with_vector))

    def delete(
        self,
        collection: str,
        ids: Any | None = None,
        *,
        filter: Filter | None = None,
        wait: bool = True,
    ) -> WriteResult:
        """Delete points by ids or by filter (exactly one)."""
        return self._run(calls.delete_points(collection, ids, filter, wait))

    def scroll(
        self,
        collection: str,
        filter: Filter | None = None,
        *,
        batch_size: int = 256,
        with_payload: bool = True,
        with_vectors: bool = False,
    ) -> Iterator[Point]:
        """Every point (optionally filtered) in insertion order, fetched page by page."""
        cursor: str | None = None
        while True:
            call = calls.scroll(collection, filter, batch_size, cursor, with_payload, with_vectors)
            page = self._run(call)
            yield from page.points
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def count(self, collection: str, filter: Filter | None = None) -> int:
        return self._run(calls.count(collection, filter))

    # search --------------------------------------------------------------------------------
    def search(
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
        """The k nearest points to `vector` (1-D; a token matrix for multi-vector) or `text`.
        `params`: nprobe, ef_search, rerank, oversample."""
        body = calls.search_body(vector, text, k, filter, with_payload, with_vectors, params)
        return self._run(calls.search(collection, body))

    def search_batch(
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
        """One request, one result list per query (rows of an (n, dim) array, or matrices)."""
        bodies = [
            calls.search_body(v, None, k, filter, with_payload, with_vectors, params)
            for v in vectors
        ]
        return self._run(calls.search_batch(collection, bodies))

    # snapshots -----------------------------------------------------------------------------
    def create_snapshot(self, collection: str) -> SnapshotInfo:
        return self._run(calls.create_snapshot(collection))

    def list_snapshots(self, collection: str) -> list[SnapshotInfo]:
        return self._run(calls.list_snapshots(collection))

    def restore_snapshot(self, collection: str, snapshot: str) -> CollectionInfo:
        """Replace (or re-create) the collection from one of its snapshots."""
        return self._run(calls.restore_snapshot(collection, snapshot))

    def delete_snapshot(self, collection: str, snapshot: str) -> None:
        self._run(calls.delete_snapshot(collection, snapshot))

    def download_snapshot(self, collection: str, snapshot: str, target: str | Path) -> Path:
        return self._run(calls.download_snapshot(collection, snapshot, Path(target)))

    def upload_snapshot(self, collection: str, tarball: str | Path) -> CollectionInfo:
        """Replace (or create) the collection from a snapshot tarball on this machine."""
        return self._run(calls.upload_snapshot(collection, Path(tarball)))


def _in_threads(send: Any, batches: Iterator[Batch], parallel: int) -> int:
    """send(batch) for every batch, at most `parallel` at once (and as many queued)."""
    total = 0
    with ThreadPoolExecutor(parallel, thread_name_prefix="pith-upload") as pool:
        pending: set[Future[int]] = set()
        for batch in batches:
            if len(pending) >= 2 * parallel:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                total += sum(f.result() for f in done)
            pending.add(pool.submit(send, batch))
        total += sum(f.result() for f in pending)
    return total
