"""A collection: the service-level API over one store, one payload index and one live index.
It knows nothing of HTTP; every method is synchronous and thread-safe (CPU-heavy ones are
meant to run in the server's bounded thread pool; writes go through the collection's writer)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from core.errors import InvalidInput, NotFound
from index import SearchParams, SearchResult
from server.service.checkpoint import remove_scratch
from server.service.filters import Filter, select
from server.service.ids import PointId, id_value
from server.service.inputs import spec_embed, spec_vectors
from server.service.maintenance import WriteHandler, checkpoint, dirty
from server.service.snapshots import write_snapshot
from server.service.state import CollectionState
from server.service.store import PointRow
from server.service.trainer import start_training
from server.service.vectors import Vectors
from server.service.writer import Control, Writer
from server.service.writes import Delete, Upsert, WriteResult

MAX_K = 10_000
WIDE = 1 << 20  # nprobe past any nlist: the library clamps it to a full scan
WIDE_EF = 256
TRAINING_STOP_S = 30.0  # how long closing waits for a training run to reach its next step

log = logging.getLogger("pith.collection")


@dataclass(frozen=True)
class Point:
    """A stored point as the API returns it."""

    id: PointId
    version: int
    payload: dict[str, Any] | None
    vector: Any | None


class Hit(NamedTuple):
    """One search result: for l2 collections `score` is the Euclidean distance. (A tuple:
    made ten times per query on the search path, where a frozen dataclass costs more.)"""

    id: PointId
    score: float
    payload: dict[str, Any] | None
    vector: Any | None


@dataclass(frozen=True)
class Query:
    """A prepared search: vectors validated, filter parsed, params resolved."""

    vectors: Vectors
    k: int
    filter: Filter | None = None
    params: SearchParams = dataclasses.field(default_factory=SearchParams)
    with_payload: bool = True
    with_vectors: bool = False


class Collection:
    """See the module docstring."""

    def __init__(self, st: CollectionState) -> None:
        self.st = st
        self.name = st.name
        self.spec = st.spec
        handler = WriteHandler(st, lambda: start_training(st, self.writer.submit))
        self.writer = Writer(st.name, handler, st.options.checkpoint_idle_s)
        self._handler = handler
        handler.maybe_train()  # a run cut short by a restart starts again

    # inputs --------------------------------------------------------------------------------
    def vectors(
        self, data: object, offsets: object | None = None, name: str = "vectors"
    ) -> Vectors:
        """Validate raw vectors (or packed token vectors) into the stored form."""
        return spec_vectors(self.spec, data, offsets, name)

    def embed(self, texts: list[str], name: str = "text") -> Vectors:
        """Texts -> vectors with the collection's embedder (pooled, or tokens if multi)."""
        return spec_embed(self.spec, self.st.embedders, self.name, texts, name)

    # writes --------------------------------------------------------------------------------
    def upsert(
        self, keys: list[str], vectors: Vectors, payloads: list[dict[str, Any] | None], wait: bool
    ) -> Future[WriteResult]:
        """Insert or replace points; the future resolves once logged (wait=False) or applied."""
        if not (len(keys) == len(vectors) == len(payloads)):
            raise InvalidInput(
                f"{len(keys)} ids for {len(vectors)} vectors and {len(payloads)} payloads"
            )
        return self.writer.submit(Upsert(keys, vectors, payloads, wait))

    def delete(self, keys: list[str] | None, flt: Filter | None, wait: bool) -> Future[WriteResult]:
        """Delete points by key or by filter."""
        if (keys is None) == (flt is None):
            raise InvalidInput("delete takes either ids or a filter")
        return self.writer.submit(Delete(keys, flt, wait))

    def train(self) -> Future[str]:
        """Start (or join) a training run; resolves when the trained index serves searches."""
        self.st.store.check_writable()
        return start_training(self.st, self.writer.submit)

    def snapshot(self, target: Path) -> Future[Path]:
        """A consistent tarball of store and index, written on the writer thread."""
        self.st.store.check_writable()
        return self.writer.submit(Control(lambda: write_snapshot(self.st, target)))

    # reads ---------------------------------------------------------------------------------
    def search(self, query: Query) -> list[list[Hit]]:
        """Top-k per query; the filter restricts the index scan itself."""
        if not 1 <= query.k <= MAX_K:
            raise InvalidInput(f"k must be in [1, {MAX_K}], got {query.k}")
        live, nq = self.st.live, len(query.vectors)
        with live.lock.read():
            allowed = None if query.filter is None else select(query.filter, self.st.payloads)
            if allowed is not None and len(allowed) == 0:
                return [[] for _ in range(nq)]
            result = live.search(query.vectors, query.k, query.params, allowed)
            if allowed is not None:
                result = self._widen(result, query, allowed)
            if not (query.with_payload or query.with_vectors):  # ids from the in-memory key map
                return [
                    self._bare_hits(s, i) for s, i in zip(result.scores, result.ids, strict=True)
                ]
            rows = self.st.store.fetch(
                sorted(set(result.ids[result.ids >= 0].tolist())),
                query.with_payload,
                query.with_vectors,
            )
        return [self._hits(s, i, rows) for s, i in zip(result.scores, result.ids, strict=True)]

    def _widen(self, result: SearchResult, query: Query, allowed: np.ndarray) -> SearchResult:
        """Queries a filtered, partial scan (IVF probes, HNSW beam) left short of k hits
        although enough points pass the filter are answered again scanning everything."""
        wanted = min(query.k, len(allowed))
        short = np.flatnonzero((result.ids >= 0).sum(axis=1) < wanted)
        if not len(short):
            return result
        wide = dataclasses.replace(query.params, nprobe=WIDE, ef_search=max(query.k, 4 * WIDE_EF))
        again = self.st.live.search(query.vectors.take(short), query.k, wide, allowed)
        scores, ids = result.scores.copy(), result.ids.copy()
        scores[short], ids[short] = again.scores, again.ids
        return SearchResult(scores, ids)

    def _bare_hits(self, scores: np.ndarray, ids: np.ndarray) -> list[Hit]:
        """Hits with ids only (the caller holds the live index's read lock)."""
        key_of, l2 = self.st.payloads.key_of, self.spec.metric == "l2"
        out = []
        for score, iid in zip(scores.tolist(), ids.tolist(), strict=True):
            key = key_of(iid)
            if key is not None:
                out.append(
                    Hit(id_value(key), math.sqrt(max(score, 0.0)) if l2 else score, None, None)
                )
        return out

    def _hits(self, scores: np.ndarray, ids: np.ndarray, rows: dict[int, PointRow]) -> list[Hit]:
        out = []
        l2 = self.spec.metric == "l2"
        for score, iid in zip(scores.tolist(), ids.tolist(), strict=True):
            row = rows.get(iid)
            if row is None:
                continue
            if l2:
                score = math.sqrt(max(score, 0.0))
            out.append(Hit(id_value(row.key), score, row.payload, self._vector(row.vector)))
        return out

    def _vector(self, blob: bytes | None) -> Any | None:
        if blob is None:
            return None
        x = np.frombuffer(blob, dtype="<f2").astype(np.float32)
        return x.reshape(-1, self.spec.dim).tolist() if self.spec.multivector else x.tolist()

    def _point(self, row: PointRow) -> Point:
        return Point(id_value(row.key), row.version, row.payload, self._vector(row.vector))

    def get(self, key: str, with_vector: bool) -> Point:
        row = self.st.store.get(key, with_vector)
        if row is None:
            raise NotFound(f"point {key} not found in collection {self.name!r}")
        return self._point(row)

    def scroll(
        self, flt: Filter | None, cursor: int, limit: int, with_payload: bool, with_vectors: bool
    ) -> tuple[list[Point], int | None]:
        """Points after `cursor` (an internal id) in insertion order, and the next cursor."""
        if flt is None:
            rows = self.st.store.page(cursor, limit + 1, with_payload, with_vectors)
        else:
            ids = select(flt, self.st.payloads)
            ids = ids[np.searchsorted(ids, cursor, side="right") :][: limit + 1]
            found = self.st.store.fetch(ids.tolist(), with_payload, with_vectors)
            rows = [found[i] for i in ids.tolist() if i in found]
        more = len(rows) > limit
        rows = rows[:limit]
        return [self._point(r) for r in rows], (rows[-1].iid if more and rows else None)

    def count(self, flt: Filter | None) -> int:
        if flt is None:
            return len(self.st.payloads)
        return len(select(flt, self.st.payloads))

    def info(self) -> dict[str, Any]:
        """Spec, sizes, training state and log positions."""
        st, live = self.st, self.st.live
        with live.lock.read():
            ram, disk, indexed = (
                live.engine.bytes_in_ram(),
                live.engine.bytes_on_disk(),
                live.engine.ntotal,
            )
        store_bytes = sum(p.stat().st_size for p in st.folder.glob("store.sqlite*"))
        return {
            "name": self.name,
            "spec": self.spec.to_json(),
            "points": len(st.payloads),
            "indexed_points": indexed,
            "bytes_in_ram": ram,
            "bytes_on_disk": disk + store_bytes,
            "index_bytes_on_disk": disk,
            "store_bytes_on_disk": store_bytes,
            "training": {
                "state": st.training.state,
                "trained": live.trained,
                "error": st.training.error,
                "last_duration_s": st.training.last_duration_s,
                "train_size": self.spec.train_size,
            },
            "applied_seq": live.seq,
            "checkpoint_seq": st.checkpoint.seq if st.checkpoint else None,
            "pending_operations": self.writer.pending,
        }

    # lifecycle -----------------------------------------------------------------------------
    def close(self, save: bool = True) -> None:
        """Stop a training run, finish queued writes, checkpoint if needed, stop the writer,
        close the store."""
        if not self.st.training.stop(TRAINING_STOP_S):  # a thread left inside FAISS or torch
            log.warning("training %s still running after %.0f s", self.st.name, TRAINING_STOP_S)
        if save:  # on failure close anyway: the log still holds every acknowledged write
            with contextlib.suppress(Exception):
                self.writer.submit(Control(self._final_checkpoint)).result()
        self.writer.stop()
        self.st.store.close()
        if self.st.store.read_only:  # the index ran from a scratch copy
            remove_scratch(self.st.index_folder.root)

    def _final_checkpoint(self) -> None:
        if dirty(self.st):
            checkpoint(self.st)
