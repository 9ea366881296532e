"""The durable store of one collection: SQLite in WAL mode with synchronous=FULL.

Tables: points (internal id, external key, version, payload JSON, float16 vector blob),
oplog (sequence number, the internal id range it added, the internal ids it removed) and
meta (counters). One writer connection (the collection's writer thread) and a small pool of
reader connections; a write commits a whole group of operations in one fsynced transaction.
"""

from __future__ import annotations

import contextlib
import errno
import queue
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson

from core.errors import PithError
from server.service.errors import STARTED_READ_ONLY, DiskFull, ReadOnlyStorage

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS points (
    iid INTEGER PRIMARY KEY, ext TEXT NOT NULL UNIQUE, version INTEGER NOT NULL,
    payload TEXT, vector BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS oplog (
    seq INTEGER PRIMARY KEY, added_lo INTEGER NOT NULL, added_hi INTEGER NOT NULL,
    removed BLOB NOT NULL);
INSERT OR IGNORE INTO meta VALUES ('last_seq', 0), ('next_iid', 0);
"""
CHUNK = 900  # bound parameters per IN (...) query


class PointRow(NamedTuple):
    """One stored point (payload parsed, vector as its float16 blob)."""

    iid: int
    key: str
    version: int
    payload: dict | None
    vector: bytes | None


@dataclass(frozen=True)
class LoggedOp:
    """One operation-log entry: internal ids [added_lo, added_hi) added, `removed` removed."""

    seq: int
    added_lo: int
    added_hi: int
    removed: np.ndarray


@dataclass(frozen=True)
class Counters:
    last_seq: int
    next_iid: int


def connect(path: Path, read_only: bool = False, shared: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, synchronous=FULL;
    or a read-only one (on a read-only data directory: SQLite reads the WAL when its files
    are there, and without them the file cannot change under us, so it is opened immutable;
    `shared`: another process writes it, so never immutable)."""
    if read_only:
        wal = shared or path.with_name(path.name + "-wal").exists()
        uri = f"{path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
        return sqlite3.connect(
            uri, uri=True, isolation_level=None, check_same_thread=False, timeout=60
        )
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn


def disk_errors(exc: BaseException) -> bool:
    """Whether an exception means the disk is full."""
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return True
    return isinstance(exc, sqlite3.OperationalError) and "full" in str(exc).lower()


def read_only_errors(exc: BaseException) -> bool:
    """Whether an exception means the data directory cannot be written."""
    if isinstance(exc, OSError) and exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return True
    return isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc).lower()


def storage_error(exc: BaseException, doing: str) -> PithError | None:
    """DiskFull (507) or ReadOnlyStorage (503) when `exc` means so, else None."""
    if disk_errors(exc):
        return DiskFull(f"disk full while {doing}")
    if read_only_errors(exc):
        return ReadOnlyStorage(f"data directory is read-only while {doing}")
    return None


class Store:
    """Points and operation log of one collection (see the module docstring)."""

    def __init__(self, path: Path, read_only: bool = False, shared: bool = False) -> None:
        self.path = Path(path)
        self.read_only = read_only
        self.shared = shared  # read-only, following a file another process writes
        self._writer = connect(self.path, read_only, shared)
        if not read_only:
            self._writer.executescript(SCHEMA)
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._pinned = threading.local()

    # connections -------------------------------------------------------------------------
    @contextlib.contextmanager
    def reader(self) -> Iterator[sqlite3.Connection]:
        """A pooled reader connection (one thread at a time); this thread's pinned one."""
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self._lock:
            if self._closed:
                raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        try:
            conn = self._readers.get_nowait()
        except queue.Empty:
            conn = connect(self.path, self.read_only, self.shared)
        try:
            yield conn
        finally:
            with self._lock:
                closed = self._closed
            if closed:  # closed meanwhile: this one was in use, so close() left it to us
                with contextlib.suppress(sqlite3.Error):
                    conn.close()
            else:
                self._readers.put(conn)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[sqlite3.Connection]:
        """A reader inside one read transaction: every query sees the same committed state
        (inside `pinned`: the pinned one, already in its transaction)."""
        pinned = getattr(self._pinned, "conn", None)
        if pinned is not None:
            yield pinned
            return
        with self.reader() as conn:
            conn.execute("BEGIN")
            try:
                yield conn
            finally:
                conn.execute("COMMIT")

    @contextlib.contextmanager
    def pinned(self, conn: sqlite3.Connection) -> Iterator[None]:
        """Every read of this thread goes to `conn` (a `snapshot`'s) meanwhile: a follower
        reads its rows in the state it caught up to."""
        self._pinned.conn = conn
        try:
            yield
        finally:
            self._pinned.conn = None

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """The writer connection inside BEGIN IMMEDIATE ... COMMIT (fsynced); disk-full
        errors become DiskFull and roll back."""
        conn = self._writer
        self.check_writable()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException as exc:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            err = storage_error(exc, f"writing {self.path.name}")
            if err is not None:
                raise err from exc
            raise

    def check_writable(self) -> None:
        """ReadOnlyStorage (503) for a store opened read-only."""
        if self.read_only:
            raise ReadOnlyStorage(STARTED_READ_ONLY)

    def close(self) -> None:
        """Close the writer and the idle readers; a reader in use (a training run's sample, a
        search's rows) is closed when it is given back: closing a connection another thread
        is reading through crashes the process (seen: a segfault in sqlite3 at shutdown)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        idle = [self._writer]
        while True:
            try:
                idle.append(self._readers.get_nowait())
            except queue.Empty:
                break
        for conn in idle:
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    # writer-side helpers (inside `transaction`) --------------------------------------------
    @staticmethod
    def counters(conn: sqlite3.Connection) -> Counters:
        rows = dict(conn.execute("SELECT key, value FROM meta").fetchall())
        return Counters(int(rows["last_seq"]), int(rows["next_iid"]))

    @staticmethod
    def set_counters(conn: sqlite3.Connection, c: Counters) -> None:
        conn.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [(c.last_seq, "last_seq"), (c.next_iid, "next_iid")],
        )

    @staticmethod
    def lookup(conn: sqlite3.Connection, keys: Sequence[str]) -> dict[str, int]:
        """External key -> internal id of the keys present."""
        out: dict[str, int] = {}
        for start in range(0, len(keys), CHUNK):
            part = keys[start : start + CHUNK]
            sql = f"SELECT ext, iid FROM points WHERE ext IN ({','.join('?' * len(part))})"
            out.update(conn.execute(sql, part).fetchall())
        return out

    @staticmethod
    def insert(
        conn: sqlite3.Connection, rows: list[tuple[int, str, int, str | None, bytes]]
    ) -> None:
        conn.executemany(
            "INSERT INTO points (iid, ext, version, payload, vector) VALUES (?, ?, ?, ?, ?)", rows
        )

    @staticmethod
    def delete(conn: sqlite3.Connection, iids: np.ndarray) -> None:
        conn.executemany("DELETE FROM points WHERE iid = ?", [(int(i),) for i in iids])

    @staticmethod
    def log(conn: sqlite3.Connection, op: LoggedOp) -> None:
        removed = np.ascontiguousarray(op.removed, dtype="<i8").tobytes()
        conn.execute(
            "INSERT INTO oplog (seq, added_lo, added_hi, removed) VALUES (?, ?, ?, ?)",
            (op.seq, op.added_lo, op.added_hi, removed),
        )

    def truncate_log(self, upto_seq: int) -> None:
        """Drop log entries a checkpoint covers."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM oplog WHERE seq <= ?", (upto_seq,))

    def backup(self, target: Path) -> None:
        """A consistent copy of the database (SQLite online backup API)."""
        dest = sqlite3.connect(target)
        try:
            self._writer.backup(dest)
        finally:
            dest.close()

    # reads -------------------------------------------------------------------------------
    def read_counters(self) -> Counters:
        with self.reader() as conn:
            return self.counters(conn)

    def count(self) -> int:
        with self.reader() as conn:
            return int(conn.execute("SELECT count(*) FROM points").fetchone()[0])

    def get(self, key: str, with_vector: bool) -> PointRow | None:
        with self.reader() as conn:
            row = conn.execute(
                f"SELECT iid, ext, version, payload, {_vec(with_vector)} FROM points WHERE ext = ?",
                (key,),
            ).fetchone()
        return None if row is None else _row(row)

    def fetch(
        self, iids: Sequence[int], with_payload: bool, with_vector: bool
    ) -> dict[int, PointRow]:
        """Rows of the given internal ids that still exist."""
        out: dict[int, PointRow] = {}
        cols = f"iid, ext, version, {'payload' if with_payload else 'NULL'}, {_vec(with_vector)}"
        with self.reader() as conn:
            for start in range(0, len(iids), CHUNK):
                part = [int(i) for i in iids[start : start + CHUNK]]
                sql = f"SELECT {cols} FROM points WHERE iid IN ({','.join('?' * len(part))})"
                out.update((r[0], _row(r)) for r in conn.execute(sql, part))
        return out

    def page(
        self, after_iid: int, limit: int, with_payload: bool, with_vector: bool
    ) -> list[PointRow]:
        """Up to `limit` points with internal id above `after_iid`, in id order."""
        cols = f"iid, ext, version, {'payload' if with_payload else 'NULL'}, {_vec(with_vector)}"
        with self.reader() as conn:
            rows = conn.execute(
                f"SELECT {cols} FROM points WHERE iid > ? ORDER BY iid LIMIT ?", (after_iid, limit)
            ).fetchall()
        return [_row(r) for r in rows]

    @staticmethod
    def ops_after(conn: sqlite3.Connection, seq: int) -> list[LoggedOp]:
        rows = conn.execute(
            "SELECT seq, added_lo, added_hi, removed FROM oplog WHERE seq > ? ORDER BY seq", (seq,)
        )
        return [
            LoggedOp(s, lo, hi, np.frombuffer(rm, dtype="<i8").astype(np.int64))
            for s, lo, hi, rm in rows
        ]

    @staticmethod
    def vectors_from(
        conn: sqlite3.Connection, from_iid: int, chunk: int
    ) -> Iterator[tuple[np.ndarray, list[bytes]]]:
        """(internal ids, vector blobs) of the points with id >= from_iid, in id order, chunked."""
        last = from_iid - 1
        while True:
            rows = conn.execute(
                "SELECT iid, vector FROM points WHERE iid > ? ORDER BY iid LIMIT ?", (last, chunk)
            ).fetchall()
            if not rows:
                return
            yield np.fromiter((r[0] for r in rows), np.int64, len(rows)), [r[1] for r in rows]
            last = rows[-1][0]

    @staticmethod
    def payloads(
        conn: sqlite3.Connection, from_iid: int = 0
    ) -> Iterator[tuple[int, str, dict | None]]:
        """(internal id, external key, payload) of every point with id >= from_iid."""
        rows = conn.execute("SELECT iid, ext, payload FROM points WHERE iid >= ?", (from_iid,))
        for iid, key, text in rows:
            yield iid, key, (orjson.loads(text) if text is not None else None)


def _vec(with_vector: bool) -> str:
    return "vector" if with_vector else "NULL"


def _row(row: tuple) -> PointRow:
    iid, ext, version, payload, vector = row
    return PointRow(
        iid, ext, version, orjson.loads(payload) if payload is not None else None, vector
    )
