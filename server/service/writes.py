"""Write operations: what a request submits (jobs) and how a group of them is committed.

One transaction per group: resolve external keys, allocate increasing internal ids, replace
or delete rows, append one log entry per operation, advance the counters. The result says,
per operation, which internal ids were added (with their vectors) and which were removed, which
is all the index and the payload index need to follow.
"""

from __future__ import annotations

import sqlite3
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from server.service.filters import Filter, select
from server.service.payloads import PayloadIndex
from server.service.store import Counters, LoggedOp, Store
from server.service.vectors import Vectors, to_blobs


@dataclass(frozen=True)
class WriteResult:
    """The acknowledgement of a write: its sequence number and how far it got."""

    seq: int
    status: str  # "acknowledged" (durably logged) or "completed" (also visible to search)
    count: int


@dataclass
class Upsert:
    """Points to insert or replace (keys unique after `dedupe`)."""

    keys: list[str]
    vectors: Vectors
    payloads: list[dict[str, Any] | None]
    wait: bool = True
    future: Future[WriteResult] = field(default_factory=Future)

    def dedupe(self) -> None:
        """Keep the last occurrence of each key (a batch is applied in order)."""
        last = {key: i for i, key in enumerate(self.keys)}
        if len(last) == len(self.keys):
            return
        keep = np.array(sorted(last.values()), dtype=np.int64)
        self.keys = [self.keys[i] for i in keep]
        self.payloads = [self.payloads[i] for i in keep]
        self.vectors = self.vectors.take(keep)

    @property
    def size(self) -> int:
        return len(self.keys)


@dataclass
class Delete:
    """Points to delete, by key or by filter (a filter is evaluated at its turn in the log)."""

    keys: list[str] | None = None
    filter: Filter | None = None
    wait: bool = True
    future: Future[WriteResult] = field(default_factory=Future)

    @property
    def size(self) -> int:
        return len(self.keys or ()) or 1


Job = Upsert | Delete


@dataclass(frozen=True)
class Applied:
    """One committed operation, as the index and payload index must follow it."""

    job: Job
    seq: int
    added: np.ndarray  # internal ids, increasing
    vectors: Vectors | None
    payloads: list[dict[str, Any] | None]
    removed: np.ndarray


def commit(store: Store, payloads: PayloadIndex, jobs: list[Job]) -> list[Applied]:
    """Commit the jobs in one fsynced transaction; return what each changed."""
    out: list[Applied] = []
    with store.transaction() as conn:
        counters = store.counters(conn)
        for job in jobs:
            applied, counters = _one(conn, payloads, job, counters)
            out.append(applied)
        store.set_counters(conn, counters)
    return out


def _one(
    conn: sqlite3.Connection, payloads: PayloadIndex, job: Job, c: Counters
) -> tuple[Applied, Counters]:
    seq = c.last_seq + 1
    if isinstance(job, Delete):
        removed = _targets(conn, payloads, job)
        Store.delete(conn, removed)
        Store.log(conn, LoggedOp(seq, c.next_iid, c.next_iid, removed))
        return Applied(job, seq, np.zeros(0, np.int64), None, [], removed), Counters(
            seq, c.next_iid
        )
    job.dedupe()
    existing = Store.lookup(conn, job.keys)
    removed = np.array(sorted(existing.values()), dtype=np.int64)
    Store.delete(conn, removed)
    added = np.arange(c.next_iid, c.next_iid + job.size, dtype=np.int64)
    texts = [None if p is None else orjson.dumps(p).decode() for p in job.payloads]
    rows = zip(
        added.tolist(), job.keys, [seq] * job.size, texts, to_blobs(job.vectors), strict=True
    )
    Store.insert(conn, list(rows))
    next_iid = c.next_iid + job.size
    Store.log(conn, LoggedOp(seq, c.next_iid, next_iid, removed))
    return Applied(job, seq, added, job.vectors, job.payloads, removed), Counters(seq, next_iid)


def _targets(conn: sqlite3.Connection, payloads: PayloadIndex, job: Delete) -> np.ndarray:
    """Internal ids a delete removes (a filter reads the payload index, current at its turn)."""
    if job.filter is not None:
        return np.asarray(select(job.filter, payloads), dtype=np.int64)
    found = Store.lookup(conn, job.keys or [])
    return np.array(sorted(found.values()), dtype=np.int64)


def follow_payloads(payloads: PayloadIndex, applied: list[Applied]) -> None:
    """Apply committed operations to the payload index, in order."""
    for op in applied:
        for iid in op.removed.tolist():
            payloads.remove(iid)
        keys = op.job.keys if isinstance(op.job, Upsert) else []
        for iid, key, payload in zip(op.added.tolist(), keys, op.payloads, strict=True):
            payloads.add(iid, key, payload)
