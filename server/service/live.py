"""The live index of a collection: the engine searches read, behind a readers-writer lock,
with the log position it reflects. The writer holds the write side from commit to apply, and
a search holds the read side from filter to payload fetch, so a search sees a group of writes
entirely (store, payload index and index) or not at all, and never a half-swapped index."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from index import SearchParams, SearchResult
from server.service.engines import CollectionIndex
from server.service.rwlock import RWLock
from server.service.vectors import Vectors, concat
from server.service.writes import Applied


class LiveIndex:
    """Engine + lock + (applied sequence number, next internal id) + training state."""

    def __init__(
        self, engine: CollectionIndex, folder: Path, trained: bool, seq: int, next_iid: int
    ) -> None:
        self.engine = engine
        self.folder = folder
        self.trained = trained
        self.seq = seq
        self.next_iid = next_iid
        self.lock = RWLock()

    def search(
        self, queries: Vectors, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> SearchResult:
        """Search the engine (the caller holds `lock.read()`)."""
        return self.engine.search(queries, k, params, allowed)

    def apply(self, ops: list[Applied], dim: int) -> None:
        """Apply committed operations as one step, removals first, then increasing adds
        (the caller holds `lock.write()`)."""
        removed = np.concatenate([op.removed for op in ops]) if ops else np.zeros(0, np.int64)
        added = np.concatenate([op.added for op in ops]) if ops else np.zeros(0, np.int64)
        batches = [op.vectors for op in ops if op.vectors is not None]
        if len(removed):
            self.engine.remove(removed)
        if len(added):
            keep = ~np.isin(added, removed)
            vectors = concat(batches, dim)
            if not keep.all():
                added, vectors = added[keep], vectors.take(np.flatnonzero(keep))
            self.engine.add(added, vectors)
        if ops:
            self.seq = ops[-1].seq
            ends = [int(op.added[-1]) + 1 for op in ops if len(op.added)]
            self.next_iid = max([self.next_iid, *ends])

    def swap(self, engine: CollectionIndex, folder: Path, trained: bool) -> Path:
        """Put a caught-up engine in place; returns the folder of the one it replaces."""
        with self.lock.write():
            old = self.folder
            self.engine, self.folder, self.trained = engine, folder, trained
            return old
