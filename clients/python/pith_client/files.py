"""Reading points from files for `pith import`: .npy (vectors; ids 0..n-1), .jsonl (one
point per line: id, vector or vectors, payload or other keys as payload), .parquet (a vector
column, an optional id column, the other columns as payload)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pith_client.errors import InvalidInput

VECTOR_KEYS = ("vector", "vectors")


@dataclass(frozen=True)
class PointsFile:
    """What a file holds: ids (None: 0..n-1), vectors, payloads (None: no payloads)."""

    ids: list[Any] | None
    vectors: Any
    payloads: list[dict[str, Any] | None] | None

    @property
    def dim(self) -> int:
        first = self.vectors[0] if len(self.vectors) else np.zeros((0, 0))
        return int(np.shape(first)[-1])

    @property
    def multivector(self) -> bool:
        return len(self.vectors) > 0 and np.ndim(self.vectors[0]) == 2


def read_points(path: Path, vector_column: str = "vector", id_column: str = "id") -> PointsFile:
    """The points of a .npy, .jsonl or .parquet file."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        vectors = np.load(path, mmap_mode="r")
        if vectors.ndim != 2:
            raise InvalidInput(f"{path}: expected an (n, dim) array, got shape {vectors.shape}")
        return PointsFile(None, vectors, None)
    if suffix in (".jsonl", ".ndjson"):
        return _read_jsonl(path)
    if suffix == ".parquet":
        return _read_parquet(path, vector_column, id_column)
    raise InvalidInput(f"{path}: unknown file type {suffix!r} (use .npy, .jsonl or .parquet)")


def _read_jsonl(path: Path) -> PointsFile:
    ids: list[Any] = []
    vectors: list[Any] = []
    payloads: list[dict[str, Any] | None] = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise InvalidInput(f"{path}:{line_no}: malformed JSON ({exc})") from exc
            key = next((k for k in VECTOR_KEYS if k in row), None)
            if not isinstance(row, dict) or key is None:
                raise InvalidInput(f"{path}:{line_no}: expected an object with a vector")
            ids.append(row.pop("id", len(ids)))
            vectors.append(np.asarray(row.pop(key), dtype=np.float32))
            payloads.append(row.pop("payload", None) if "payload" in row else (row or None))
    if vectors and vectors[0].ndim == 1:
        return PointsFile(ids, np.stack(vectors), payloads)
    return PointsFile(ids, vectors, payloads)


def _read_parquet(path: Path, vector_column: str, id_column: str) -> PointsFile:
    import pyarrow.parquet as pq

    table = pq.read_table(path)
    if vector_column not in table.column_names:
        raise InvalidInput(f"{path}: no column {vector_column!r} (have {table.column_names})")
    column = table.column(vector_column).combine_chunks()
    flat = np.asarray(column.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    vectors = flat.reshape(len(column), -1) if len(column) else flat.reshape(0, 0)
    ids = table.column(id_column).to_pylist() if id_column in table.column_names else None
    rest = [c for c in table.column_names if c not in (vector_column, id_column)]
    payloads = table.select(rest).to_pylist() if rest else None
    return PointsFile(ids, vectors, payloads)
