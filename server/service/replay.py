"""Bring an index up to the store: replay the log after a checkpoint (start-up) or after a
training snapshot (before a swap), and read seeded training samples."""

from __future__ import annotations

import sqlite3

import numpy as np

from server.service.engines import CollectionIndex
from server.service.spec import CollectionSpec
from server.service.store import Counters, Store
from server.service.vectors import Vectors, from_blobs

FILL_CHUNK = 16_384


def removed_after(conn: sqlite3.Connection, seq: int) -> np.ndarray:
    """The internal ids the logged ops after `seq` removed."""
    removed = [op.removed for op in Store.ops_after(conn, seq)]
    return np.concatenate(removed) if removed else np.zeros(0, np.int64)


def catch_up(
    engine: CollectionIndex,
    conn: sqlite3.Connection,
    spec: CollectionSpec,
    after_seq: int,
    from_iid: int,
    removed: np.ndarray | None = None,
) -> Counters:
    """Apply every logged op after `after_seq` to an engine that holds exactly the points of
    that moment (all internal ids below `from_iid` still alive then). Internal ids are never
    reused, so this is: remove what later ops removed (`removed`, when the caller has read
    them already), add the live points from `from_iid` on. Call inside `Store.snapshot` (or
    on the writer thread) so the reads agree."""
    counters = Store.counters(conn)
    if removed is None:
        removed = removed_after(conn, after_seq)
    if len(removed):
        engine.remove(removed)
    for iids, blobs in Store.vectors_from(conn, from_iid, FILL_CHUNK):
        engine.add(iids, from_blobs(blobs, spec.dim, spec.multivector))
    return counters


def read_sample(store: Store, spec: CollectionSpec, size: int, seed: int) -> Vectors:
    """A seeded uniform sample of up to `size` stored points (all of them when fewer)."""
    with store.snapshot() as conn:
        total = int(conn.execute("SELECT count(*) FROM points").fetchone()[0])
        rng = np.random.default_rng(seed)
        wanted = np.sort(rng.choice(total, size=min(size, total), replace=False))
        picked: list[bytes] = []
        seen = 0
        for _, blobs in Store.vectors_from(conn, 0, FILL_CHUNK):
            lo, hi = np.searchsorted(wanted, [seen, seen + len(blobs)])
            picked.extend(blobs[i - seen] for i in wanted[lo:hi])
            seen += len(blobs)
    return from_blobs(picked, spec.dim, spec.multivector)


def fill(engine: CollectionIndex, conn: sqlite3.Connection, spec: CollectionSpec) -> Counters:
    """Add every stored point to a fresh engine; returns the log position it then reflects.
    Call inside `Store.snapshot`."""
    counters = Store.counters(conn)
    for iids, blobs in Store.vectors_from(conn, 0, FILL_CHUNK):
        engine.add(iids, from_blobs(blobs, spec.dim, spec.multivector))
    return counters
