"""A follower: a read-only copy of a collection in another process (a search process,
server/searchworker.py) that keeps up with the process that writes it, through the files
alone. It opens the folder read-only (index from a scratch copy of the last checkpoint, the
log replayed). Each read (`Follower.reading`) runs inside one SQLite read transaction: the
copy first replays what the log holds past its own position, then the search and its row
fetches read that same state, so a search sees a write group entirely or not at all, as in
the writing process.

Before each read two stat() calls tell what changed: the collection's spec file names its
incarnation (a deleted collection has none: NotFound; a re-created or restored one has another
file: the follower opens the folder again), and the checkpoint file tells when the writer
checkpointed a trained index the copy does not have (training swapped it in): opened again
too. When the part of the log it needs is gone (a newer checkpoint truncated it), the follower
opens the folder again as well."""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

from core.errors import NotFound
from server.service.checkpoint import CHECKPOINT_FILE, IndexFolder
from server.service.collection import Collection
from server.service.embedders import Embedders
from server.service.errors import Unavailable
from server.service.opening import open_collection
from server.service.options import Options
from server.service.replay import catch_up, removed_after
from server.service.snapshots import INDEX_DIR, SPEC_FILE
from server.service.store import Store

log = logging.getLogger("pith.follower")
# a follower never writes: no idle checkpoints (they would truncate a log it does not own),
# no training
FOLLOWER_OPTIONS = Options(checkpoint_idle_s=10**9, auto_train=False)
OPEN_TRIES = 5  # the writer may prune the checkpoint being copied: open again
READ_TRIES = 3  # the writer may checkpoint (and truncate the log) between open and read
Stamp = tuple[int, int, int]  # a file's (inode, change time in ns, size)


def stamp(path: Path) -> Stamp | None:
    """What tells one version of a file from another (None when there is no file)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_ctime_ns, st.st_size)


class Follower:
    """One followed collection: the open read-only copy and the file stamps it matches."""

    def __init__(self, folder: Path, embedders: Embedders | None = None) -> None:
        self.folder = folder
        self.embedders = embedders
        self._spec, self._checkpoint = self._incarnation(), self._checkpoint_stamp()
        self.collection = self._open()

    def _incarnation(self) -> Stamp:
        found = stamp(self.folder / SPEC_FILE)
        if found is None:
            raise NotFound(f"collection {self.folder.name!r} not found")
        return found

    def _checkpoint_stamp(self) -> Stamp | None:
        return stamp(self.folder / INDEX_DIR / CHECKPOINT_FILE)

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
    def reading(self) -> Iterator[Collection]:
        """The copy, caught up with every committed write, its reads pinned to that state
        for the duration (the caller's thread only). NotFound once the collection is gone."""
        if self._incarnation() != self._spec or self._trained_elsewhere():
            self._reopen()
        for _ in range(READ_TRIES):
            store = self.collection.st.store
            with store.snapshot() as conn:
                if replay(self.collection, conn):
                    with store.pinned(conn):
                        yield self.collection
                    return
            self._reopen()
        raise Unavailable(f"collection {self.folder.name!r} kept changing; try again")

    def _trained_elsewhere(self) -> bool:
        """A new checkpoint holds a trained index and the copy's is not (or the other way
        round): the writer swapped one in (until it is checkpointed, the copy's own serves)."""
        now = self._checkpoint_stamp()
        if now == self._checkpoint:
            return False
        self._checkpoint = now
        ckpt = IndexFolder.read_in(self.folder / INDEX_DIR)
        return ckpt is not None and ckpt.trained != self.collection.st.live.trained

    def _reopen(self) -> None:
        spec, checkpoint = self._incarnation(), self._checkpoint_stamp()
        fresh = self._open()
        self.collection.close(save=False)
        self.collection, self._spec, self._checkpoint = fresh, spec, checkpoint

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
