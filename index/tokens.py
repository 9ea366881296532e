"""The token store: float16 token rows of multi-vector documents in an append-only,
memory-mapped file (disk, not RAM), and one (id, first row, token count) record per document.

Records are appended in order; the latest record of an id supersedes earlier ones, and a
record with count 0 is a tombstone (the id was removed). Rows of superseded or removed
documents stay in the file until a compaction rewrites it. When the records are exactly
ids 0, 1, 2, ... once each (the server's dense internal ids) lookups read the memory-mapped
records directly; otherwise a sorted id -> record map is built in RAM on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

TOKENS_FILE = "tokens.f16"
RECORDS_FILE = "doc_records.i64"
_RECORD = 3  # int64 fields per record: id, first row, token count


class TokenFile:
    """Append-only float16 token rows with per-document records, read through np.memmap."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._tok_path = self.folder / TOKENS_FILE
        self._rec_path = self.folder / RECORDS_FILE
        for path in (self._tok_path, self._rec_path):
            path.touch(exist_ok=True)
        self._tokens: np.ndarray | None = None
        self._records: np.ndarray | None = None
        self._map: tuple[np.ndarray, np.ndarray] | None = None
        self._truncate_to_records()
        recs = self.records
        self._identity = bool(
            np.array_equal(recs[:, 0], np.arange(len(recs))) and (recs[:, 2] > 0).all()
        )

    def _truncate_to_records(self) -> None:
        """Drop a partially written tail (a crash mid-append): whole records, and token rows up
        to the end of the last record."""
        n_rec = os.path.getsize(self._rec_path) // (8 * _RECORD)
        os.truncate(self._rec_path, n_rec * 8 * _RECORD)
        recs = self.records
        end = int((recs[:, 1] + recs[:, 2]).max()) if n_rec else 0
        os.truncate(self._tok_path, min(end, self.n_rows) * 2 * self.dim)
        self._records = None

    def __len__(self) -> int:
        """Number of records (documents added, removals included)."""
        return os.path.getsize(self._rec_path) // (8 * _RECORD)

    @property
    def n_rows(self) -> int:
        return os.path.getsize(self._tok_path) // (2 * self.dim)

    @property
    def tokens(self) -> np.ndarray:
        """(rows, dim) float16, memory-mapped."""
        if self._tokens is None or len(self._tokens) != self.n_rows:
            self._tokens = _memmap(self._tok_path, np.float16, (self.n_rows, self.dim))
        return self._tokens

    @property
    def records(self) -> np.ndarray:
        """(documents, 3) int64 records (id, first row, token count), memory-mapped."""
        if self._records is None or len(self._records) != len(self):
            self._records = _memmap(self._rec_path, np.int64, (len(self), _RECORD))
        return self._records

    def append(self, ids: np.ndarray, tokens: np.ndarray, offsets: np.ndarray) -> None:
        """Append documents: tokens (total, dim) with offsets (n + 1,), one per id."""
        first_row = self.n_rows
        with open(self._tok_path, "ab") as f:
            f.write(np.ascontiguousarray(tokens, dtype=np.float16).tobytes())
        lengths = np.diff(offsets)
        recs = np.stack([ids, first_row + offsets[:-1], lengths], axis=1).astype(np.int64)
        self._append_records(recs)

    def remove(self, ids: np.ndarray) -> None:
        """Tombstone ids (their rows stay until compaction)."""
        ids = np.asarray(ids, dtype=np.int64)
        self._append_records(np.stack([ids, np.zeros_like(ids), np.zeros_like(ids)], axis=1))

    def _append_records(self, recs: np.ndarray) -> None:
        start = len(self)
        with open(self._rec_path, "ab") as f:
            f.write(np.ascontiguousarray(recs, dtype=np.int64).tobytes())
        self._identity = (
            self._identity
            and bool(np.array_equal(recs[:, 0], np.arange(start, start + len(recs))))
            and bool((recs[:, 2] > 0).all())
        )
        self._map = None

    def locate(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(first row, token count) of each id's latest record; count 0 where unknown/removed."""
        ids = np.asarray(ids, dtype=np.int64)
        recs = self.records
        if len(recs) == 0:
            return np.zeros(ids.shape, np.int64), np.zeros(ids.shape, np.int64)
        if self._identity:
            ok = (ids >= 0) & (ids < len(recs))
            found = recs[np.where(ok, ids, 0)]
            return np.where(ok, found[..., 1], 0), np.where(ok, found[..., 2], 0)
        if self._map is None:
            self._map = self._build_map()
        keys, rows = self._map
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        hit = keys[pos] == ids
        found = rows[pos]
        return np.where(hit, found[..., 0], 0), np.where(hit, found[..., 1], 0)

    def _build_map(self) -> tuple[np.ndarray, np.ndarray]:
        """Sorted ids and their latest (first row, count)."""
        recs = np.asarray(self.records)
        order = np.argsort(recs[:, 0], kind="stable")
        keys = recs[order, 0]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]
        return keys[last], np.ascontiguousarray(recs[order[last]][:, 1:])

    def flush(self) -> None:
        """fsync both files."""
        for path in (self._tok_path, self._rec_path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def bytes_in_ram(self) -> int:
        """RAM held beyond the page cache: the id -> record map when ids are not dense."""
        if self._map is None:
            return 0
        return int(self._map[0].nbytes + self._map[1].nbytes)

    def bytes_on_disk(self) -> int:
        return os.path.getsize(self._tok_path) + os.path.getsize(self._rec_path)


def _memmap(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)
