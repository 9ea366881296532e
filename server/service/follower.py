"""A follower: a read-only copy of a collection in another process (a search process,
server/searchworker.py) that keeps up with the process that writes it, through the files
alone. It opens the folder read-only (index from a scratch copy of the last checkpoint, the
log replayed). Each read (`Follower.reading`) runs inside one SQLite read transaction: the
copy first replays what the log holds past its own position, then the search and its row
fetches read that same state, so a search sees a write group entirely or not at all, as in
the writing process. When the part of the log it needs is gone (a newer checkpoint truncated
it) or the writer swapped in another index (training, recovery) and checkpointed it, the
follower opens the folder again."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from server.service.checkpoint import IndexFolder
from server.service.collection import Collection
from server.service.embedders import Embedders
from server.service.errors import Unavailable
from server.service.opening import open_collection
from server.service.options import Options
from server.service.replay import catch_up, removed_after
from server.service.snapshots import INDEX_DIR
from server.service.store import Store

log = logging.getLogger("pith.follower")
# a follower never writes: no idle checkpoints (they would truncate a log it does not own),
# no training
FOLLOWER_OPTIONS = Options(checkpoint_idle_s=10**9, auto_train=False)
OPEN_TRIES = 5  # the writer may prune the checkpoint being copied: open again
READ_TRIES = 3  # the writer may checkpoint (and truncate the log) between open and read


@dataclass(frozen=True, order=True)
class Position:
    """What the writing process knows of its collection: `incarnation` names its life (a
    re-created collection gets another number), `swaps` counts the indexes it swapped in."""

    incarnation: int
    swaps: int


class Follower:
    """One followed collection: the open read-only copy and the writer position it matches."""

    def __init__(self, folder: Path, at: Position, embedders: Embedders | None = None) -> None:
        self.folder = folder
        self.embedders = embedders
        self.collection = self._open()
        self.at = at

    def _open(self) -> Collection:
        for attempt in range(OPEN_TRIES):
            try:
                return open_collection(
                    self.folder,
                    FOLLOWER_OPTIONS,
                    embedders=self.embedders,
                    read_only=True,
                    shared=True,
                )
            except FileNotFoundError:
                if attempt == OPEN_TRIES - 1:
                    raise
                time.sleep(0.01 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextlib.contextmanager
    def reading(self, at: Position) -> Iterator[Collection]:
        """The copy, caught up with every committed write, its reads pinned to that state
        for the duration (the caller's thread only)."""
        if at.incarnation != self.at.incarnation:
            self._reopen(at)
        elif at.swaps != self.at.swaps and self._newer_checkpoint():
            self._reopen(at)  # until that checkpoint is written, the copy's own index serves
        for _ in range(READ_TRIES):
            store = self.collection.st.store
            with store.snapshot() as conn:
                if replay(self.collection, conn):
                    with store.pinned(conn):
                        yield self.collection
                    return
            self._reopen(at)
        raise Unavailable(f"collection {self.folder.name!r} kept changing; try again")

    def _newer_checkpoint(self) -> bool:
        ckpt = IndexFolder.read_in(self.folder / INDEX_DIR)
        own = self.collection.st.checkpoint
        return ckpt is not None and (own is None or ckpt.generation != own.generation)

    def _reopen(self, at: Position) -> None:
        fresh = self._open()
        self.collection.close(save=False)
        self.collection, self.at = fresh, at

    def close(self) -> None:
        self.collection.close(save=False)


def replay(collection: Collection, conn: sqlite3.Connection) -> bool:
    """Inside a read transaction: apply what the log holds past the copy's position (index
    and payload index, as one step under the write lock); False when the log no longer
    reaches back that far."""
    st = collection.st
    live = st.live
    counters = Store.counters(conn)
    if counters.last_seq == live.seq:
        return True
    ckpt = IndexFolder.read_in(st.folder / INDEX_DIR)
    if ckpt is not None and ckpt.seq > live.seq:
        return False  # the ops after our position may be truncated: reload instead
    removed = removed_after(conn, live.seq)
    with live.lock.write():
        catch_up(live.engine, conn, st.spec, live.seq, live.next_iid, removed)
        for iid in removed.tolist():
            st.payloads.remove(iid)
        st.payloads.add_many(Store.payloads(conn, live.next_iid))
        live.seq, live.next_iid = counters.last_seq, counters.next_iid
    return True
