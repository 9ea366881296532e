"""The re-rank store: float16 vectors in an append-only, memory-mapped file (disk, not RAM).

The file is a FAISS IndexScalarQuantizer(QT_fp16) file, so FAISS reads it memory-mapped
(IO_FLAG_MMAP_IFC) and re-scores candidates in C++ (IndexRefine); appends write rows at the end
and then patch the row count in the header, so a crash mid-append leaves a readable file whose
tail is dropped on open. Row r holds the id ids[r] (a second, int64 file, also mapped).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import faiss
import numpy as np

from index.codecs import faiss_metric

VECTORS_FILE = "vectors.faiss"
IDS_FILE = "vector_ids.i64"
_NTOTAL_AT = 8  # int64 ntotal after the fourcc and the int32 dimension
_CODES_SIZE_AT = 73  # size_t byte count of the codes vector (metrics ip and l2)
HEADER_BYTES = 81


class VectorFile:
    """Append-only float16 rows with their int64 ids."""

    def __init__(self, folder: Path, dim: int, metric: str) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.dim = dim
        self.path = self.folder / VECTORS_FILE
        self._ids_path = self.folder / IDS_FILE
        if not self.path.exists():
            empty = faiss.IndexScalarQuantizer(
                dim, faiss.ScalarQuantizer.QT_fp16, faiss_metric(metric)
            )
            faiss.write_index(empty, str(self.path))
        self._ids_path.touch(exist_ok=True)
        self._rows = self._recover()
        self._faiss: faiss.Index | None = None
        self._vectors: np.ndarray | None = None
        self._ids: np.ndarray | None = None
        self._map: tuple[np.ndarray, np.ndarray] | None = None
        ids = np.asarray(self.ids)
        self._identity = bool(np.array_equal(ids, np.arange(self._rows)))
        self._sorted = bool(np.all(ids[1:] > ids[:-1]))

    def _recover(self) -> int:
        """Rows both files hold completely; longer tails (a crash mid-append) are cut."""
        with open(self.path, "rb") as f:
            head = f.read(HEADER_BYTES)
        rows = struct.unpack_from("<q", head, _NTOTAL_AT)[0]
        row_bytes = 2 * self.dim
        on_disk = (os.path.getsize(self.path) - HEADER_BYTES) // row_bytes
        rows = min(rows, on_disk, os.path.getsize(self._ids_path) // 8)
        os.truncate(self.path, HEADER_BYTES + rows * row_bytes)
        os.truncate(self._ids_path, rows * 8)
        self._write_count(rows)
        return rows

    def _write_count(self, rows: int) -> None:
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, struct.pack("<q", rows), _NTOTAL_AT)
            os.pwrite(fd, struct.pack("<Q", rows * 2 * self.dim), _CODES_SIZE_AT)
        finally:
            os.close(fd)

    def __len__(self) -> int:
        return self._rows

    def append(self, ids: np.ndarray, x: np.ndarray) -> np.ndarray:
        """Append rows (ids, float16(x)); returns their row numbers. A later row for the same
        id supersedes earlier ones in `rows_of`."""
        start = self._rows
        last = np.asarray(self.ids[start - 1 : start]) if start else np.zeros(0, np.int64)
        with open(self._ids_path, "ab") as f:
            f.write(np.ascontiguousarray(ids, dtype=np.int64).tobytes())
        with open(self.path, "ab") as f:
            f.write(np.ascontiguousarray(x, dtype=np.float16).tobytes())
        self._rows = start + len(ids)
        self._write_count(self._rows)
        rows = np.arange(start, self._rows, dtype=np.int64)
        self._identity = self._identity and bool(np.array_equal(ids, rows))
        self._sorted = self._sorted and bool(np.all(np.diff(np.concatenate([last, ids])) > 0))
        self._faiss = self._vectors = self._ids = self._map = None
        return rows

    def flush(self) -> None:
        """fsync both files."""
        for path in (self._ids_path, self.path):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    # reading ---------------------------------------------------------------------------
    def faiss_index(self) -> faiss.Index:
        """The rows as a FAISS fp16 scalar-quantizer index whose codes stay memory-mapped."""
        if self._faiss is None:
            self._faiss = faiss.read_index(str(self.path), faiss.IO_FLAG_MMAP_IFC)
        return self._faiss

    @property
    def vectors(self) -> np.ndarray:
        """(rows, dim) float16, memory-mapped."""
        if self._vectors is None:
            self._vectors = _memmap(self.path, np.float16, (self._rows, self.dim), HEADER_BYTES)
        return self._vectors

    @property
    def ids(self) -> np.ndarray:
        """(rows,) int64 id of each row, memory-mapped."""
        if self._ids is None:
            self._ids = _memmap(self._ids_path, np.int64, (self._rows,), 0)
        return self._ids

    def ids_of(self, rows: np.ndarray) -> np.ndarray:
        """The id of each row (-1 stays -1)."""
        if self._identity:
            return rows
        return np.where(rows >= 0, np.asarray(self.ids)[np.maximum(rows, 0)], -1)

    def rows_of(self, ids: np.ndarray) -> np.ndarray:
        """The latest row of each id, -1 where unknown."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._identity:
            return np.where((ids >= 0) & (ids < self._rows), ids, -1)
        if self._sorted:  # increasing ids (the server's): binary search on the mapped file
            keys, rows = np.asarray(self.ids), np.arange(self._rows, dtype=np.int64)
        else:
            if self._map is None:
                self._map = self._build_map()
            keys, rows = self._map
        if len(keys) == 0:
            return np.full(ids.shape, -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(keys, ids), len(keys) - 1)
        return np.where(keys[pos] == ids, rows[pos], -1)

    def rows_matching(self, ids: np.ndarray) -> np.ndarray:
        """Every row (current or superseded) that holds one of the ids."""
        ids = np.asarray(ids, dtype=np.int64)
        if self._identity or self._sorted:
            rows = self.rows_of(ids)
            return rows[rows >= 0]
        return np.flatnonzero(np.isin(np.asarray(self.ids), ids)).astype(np.int64)

    def _build_map(self) -> tuple[np.ndarray, np.ndarray]:
        ids = np.asarray(self.ids)
        order = np.argsort(ids, kind="stable")
        keys = ids[order]
        last = np.ones(len(keys), dtype=bool)
        last[:-1] = keys[1:] != keys[:-1]  # keep the latest row of each id
        return keys[last], order[last].astype(np.int64)

    def bytes_in_ram(self) -> int:
        """RAM beyond the page cache: the id -> row map, when ids are not row numbers."""
        return 0 if self._map is None else int(self._map[0].nbytes + self._map[1].nbytes)

    def bytes_on_disk(self) -> int:
        return os.path.getsize(self.path) + os.path.getsize(self._ids_path)


def _memmap(path: Path, dtype: type, shape: tuple[int, ...], offset: int) -> np.ndarray:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape, offset=offset)
