"""Dataset containers and the on-disk cache they are built into."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def cache_root() -> Path:
    """Where built datasets are kept: $PITH_CACHE_DIR or ~/.cache/pith/datasets."""
    env = os.environ.get("PITH_CACHE_DIR")
    return Path(env) if env else Path.home() / ".cache" / "pith" / "datasets"


@dataclass(frozen=True)
class VectorDataset:
    """Single-vector corpus: documents xb, queries xq, and the relevant document of each query."""

    name: str
    xb: np.ndarray  # (n, d) float32
    xq: np.ndarray  # (nq, d) float32
    qrels: np.ndarray  # (nq,) int64: index into xb of the relevant document, -1 if none


@dataclass(frozen=True)
class MultiVectorDataset:
    """Multi-vector corpus: token vectors of documents and queries, concatenated with offsets."""

    name: str
    doc_vectors: np.ndarray  # (total_doc_tokens, d) float16 or float32, rows L2-normalised
    doc_offsets: np.ndarray  # (n + 1,) int64
    query_vectors: np.ndarray  # (total_query_tokens, d) float32
    query_offsets: np.ndarray  # (nq + 1,) int64
    qrels: np.ndarray  # (nq,) int64

    @property
    def n_docs(self) -> int:
        return len(self.doc_offsets) - 1

    @property
    def n_queries(self) -> int:
        return len(self.query_offsets) - 1

    def docs(self) -> list[np.ndarray]:
        o = self.doc_offsets
        return [self.doc_vectors[o[i] : o[i + 1]] for i in range(self.n_docs)]

    def queries(self) -> list[np.ndarray]:
        o = self.query_offsets
        return [self.query_vectors[o[i] : o[i + 1]] for i in range(self.n_queries)]


def save_arrays(folder: Path, meta: dict[str, object], **arrays: np.ndarray) -> None:
    """Write arrays as .npy and meta.json last, so a half-written cache is never read."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        np.save(folder / f"{name}.npy", arr)
    tmp = folder / "meta.json.tmp"
    tmp.write_text(json.dumps(meta, indent=1))
    tmp.replace(folder / "meta.json")


def load_arrays(folder: Path, names: list[str]) -> dict[str, np.ndarray] | None:
    """The cached arrays, or None when the cache is missing or incomplete."""
    if not (folder / "meta.json").exists():
        return None
    return {name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in names}
