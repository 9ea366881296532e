"""The re-rank store: float16 vectors in an append-only, memory-mapped file (disk, not RAM).

Rows are written in insertion order; `row_ids` (also on disk) says which id each row holds.
When ids are the row numbers themselves (the server's dense internal ids) no map is kept in
RAM at all; otherwise a sorted id -> row map is built on first use.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

VECTORS_FILE = "vectors.f16"
IDS_FILE = "vector_ids.i64"


class VectorFile:
    """Append-only float16 rows with their int64 ids, read through np.memmap."""

    def __init__(self, folder: Path, dim: int) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self._vec_path = self.folder / VECTORS_FILE
        self._ids_path = self.folder / IDS_FILE
        for path in (self._vec_path, self._ids_path):
            path.touch(exist_ok=True)
        self._truncate_to_whole_rows()
        self._map: tuple[np.ndarray, np.ndarray] | None = None
        self._vectors: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._identity = bool(np.array_equal(self.ids, np.arange(len(self.ids))))

    def _truncate_to_whole_rows(self) -> None:
        """Drop a partially written tail (a crash mid-append) so rows and ids agree."""
        rows_v = os.path.getsize(self._vec_path) // (2 * self.dim)
        rows_i = os.path.getsize(self._ids_path) // 8
        rows = min(rows_v, rows_i)
        os.truncate(self._vec_path, rows * 2 * self.dim)
        os.truncate(self._ids_path, rows * 8)

    def __len__(self) -> int:
        return os.path.getsize(self._ids_path) // 8

    @property
    def vectors(self) -> np.ndarray:
        """(rows, dim) float16, memory-mapped."""
        if self._vectors is None or len(self._vectors) != len(self):
            self._vectors = _memmap(self._vec_path, np.float16, (len(self), self.dim))
        return self._vectors

    @property
    def ids(self) -> np.ndarray:
        """(rows,) int64 id of each row, memory-mapped."""
        if self._ids is None or len(self._ids) != len(self):
            self._ids = _memmap(self._ids_path, np.int64, (len(self),))
        return self._ids

    def append(self, ids: np.ndarray, x: np.ndarray) -> None:
        """Append rows; a later row for the same id supersedes the earlier one."""
        start = len(self)
        with open(self._vec_path, "ab") as f:
            f.write(np.ascontiguousarray(x, dtype=np.float16).tobytes())
        with open(self._ids_path, "ab") as f:
            f.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        self._identity = self._identity and bool(
            np.array_equal(ids, np.arange(start, start + len(ids)))
        )
        self._map = None

    def flush(self) -> None:
        """fsync both files."""
        for path in (self._vec_path, self._ids_path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """Row of each id (the latest one), -1 where unknown or for id -1."""
        ids = np.asarray(ids, dtype=np.int64)
        n = len(self)
        if self._identity:
            return np.where((ids >= 0) & (ids < n), ids, -1)
        if self._map is None:
            self._map = self._build_map()
        keys, rows = self._map
        if len(keys) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        return np.where(keys[pos] == ids, rows[pos], -1)

    def _build_map(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.ids)
        order = np.argsort(ids, kind="stable")
        keys = ids[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]  # keep the latest row of each id
        return keys[last], order[last].astype(np.int64)

    def bytes_in_ram(self) -> int:
        """RAM held beyond the page cache: the id -> row map when ids are not row numbers."""
        if self._map is None:
            return 0
        return int(self._map[0].nbytes + self._map[1].nbytes)

    def bytes_on_disk(self) -> int:
        return os.path.getsize(self._vec_path) + os.path.getsize(self._ids_path)


def _memmap(path: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)
