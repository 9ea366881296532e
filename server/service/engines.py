"""The seam between a collection and its index: one small protocol, three implementations.

- SingleEngine: any library `Index` (the exact float16 flat index before training, the
  collection's own encoder/index after);
- MultiEngine: `MultiVectorIndex` (MUVERA FDE candidates, exact Chamfer re-rank);
- ExactMultiEngine: multi-vector points before training: exact Chamfer over every point.
"""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import numpy as np

from core.errors import InvalidSpec
from core.manifest import load_npy, read_manifest, save_npy, write_manifest
from encoders.spec import Float16Spec
from index import FlatSpec, Index, SearchParams, SearchResult, build_index, load_index, save_index
from index.multivector import MultiVectorIndex, build_multivector_index, load_multivector_index
from index.tokens import TokenFile
from kernels.chamfer import chamfer_rerank
from kernels.topk import topk
from server.service.spec import CollectionSpec
from server.service.vectors import Vectors

DEFAULT_OVERSAMPLE = 10.0
EXACT_BLOCK = 1024  # candidate documents per exact Chamfer block


class CollectionIndex(Protocol):
    """What a collection needs from its index: internal int64 ids, increasing on add."""

    kind: str

    @property
    def ntotal(self) -> int: ...

    @property
    def is_trained(self) -> bool: ...

    def train(self, sample: Vectors) -> None: ...

    def add(self, iids: np.ndarray, vectors: Vectors) -> None: ...

    def remove(self, iids: np.ndarray) -> None: ...

    def search(
        self, queries: Vectors, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> SearchResult: ...

    def save(self, folder: Path) -> None: ...

    def bytes_in_ram(self) -> int: ...

    def bytes_on_disk(self) -> int: ...


class SingleEngine:
    """A library `Index` over single vectors."""

    kind = "single"

    def __init__(self, index: Index) -> None:
        self.index = index

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return self.index.is_trained

    def train(self, sample: Vectors) -> None:
        self.index.train(sample.data)

    def add(self, iids: np.ndarray, vectors: Vectors) -> None:
        self.index.add(iids, vectors.data)

    def remove(self, iids: np.ndarray) -> None:
        self.index.remove(iids)

    def search(
        self, queries: Vectors, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> SearchResult:
        return self.index.search(queries.data, k, params, allowed)

    def save(self, folder: Path) -> None:
        save_index(self.index, folder)

    def bytes_in_ram(self) -> int:
        return self.index.bytes_in_ram()

    def bytes_on_disk(self) -> int:
        return self.index.bytes_on_disk()


class MultiEngine:
    """A `MultiVectorIndex`: FDE candidates (oversample x k), exact Chamfer re-rank."""

    kind = "multi"

    def __init__(self, index: MultiVectorIndex, oversample: float) -> None:
        self.index = index
        self.oversample = oversample

    @property
    def ntotal(self) -> int:
        return self.index.ntotal

    @property
    def is_trained(self) -> bool:
        return self.index.is_trained

    def train(self, sample: Vectors) -> None:
        self.index.train(sample.split())

    def add(self, iids: np.ndarray, vectors: Vectors) -> None:
        self.index.add(iids, vectors.split())

    def remove(self, iids: np.ndarray) -> None:
        self.index.remove(iids)

    def search(
        self, queries: Vectors, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> SearchResult:
        candidates = max(k, math.ceil(k * (params.oversample or self.oversample)))
        return self.index.search(queries.split(), k, candidates, params, allowed)

    def save(self, folder: Path) -> None:
        self.index.save(folder)

    def bytes_in_ram(self) -> int:
        return self.index.bytes_in_ram()

    def bytes_on_disk(self) -> int:
        return self.index.bytes_on_disk()


class ExactMultiEngine:
    """Token matrices in a `TokenFile`; search scores every live point by exact Chamfer."""

    kind = "exact_multi"

    def __init__(self, folder: Path, dim: int, alive: np.ndarray | None = None) -> None:
        self.folder = Path(folder)
        self.tokens = TokenFile(self.folder / "tokens", dim)
        self.alive = np.zeros(0, np.int64) if alive is None else np.asarray(alive, np.int64)

    @property
    def ntotal(self) -> int:
        return len(self.alive)

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, sample: Vectors) -> None:
        """Nothing to learn."""

    def add(self, iids: np.ndarray, vectors: Vectors) -> None:
        assert vectors.offsets is not None
        self.tokens.append(iids, vectors.data, vectors.offsets)
        self.alive = np.union1d(self.alive, iids)

    def remove(self, iids: np.ndarray) -> None:
        gone = np.intersect1d(self.alive, iids)
        if len(gone):
            self.tokens.remove(gone)
            self.alive = np.setdiff1d(self.alive, gone, assume_unique=True)

    def search(
        self, queries: Vectors, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> SearchResult:
        assert queries.offsets is not None
        cand = self.alive if allowed is None else np.intersect1d(self.alive, allowed)
        nq = len(queries)
        best_s = np.full((nq, 0), -np.inf, np.float32)
        best_i = np.full((nq, 0), -1, np.int64)
        for start in range(0, len(cand), EXACT_BLOCK):
            block = np.broadcast_to(
                cand[start : start + EXACT_BLOCK], (nq, len(cand[start : start + EXACT_BLOCK]))
            )
            starts, lengths = self.tokens.locate(block)
            s, i = chamfer_rerank(
                queries.data, queries.offsets, block, starts, lengths, self.tokens.tokens, k
            )
            best_s, best_i = np.concatenate([best_s, s], 1), np.concatenate([best_i, i], 1)
        scores, ids = topk(best_s, best_i, k)
        return SearchResult(scores, ids)

    def save(self, folder: Path) -> None:
        folder = Path(folder)
        self.tokens.flush()
        if (folder / "tokens").resolve() != self.tokens.folder.resolve():
            shutil.copytree(self.tokens.folder, folder / "tokens", dirs_exist_ok=True)
        save_npy(folder, {"alive": self.alive})
        write_manifest(folder, "exact_multivector", {"dim": self.tokens.dim})

    def bytes_in_ram(self) -> int:
        return int(self.alive.nbytes) + self.tokens.bytes_in_ram()

    def bytes_on_disk(self) -> int:
        return self.tokens.bytes_on_disk()


def _oversample(spec: CollectionSpec) -> float:
    return spec.oversample or DEFAULT_OVERSAMPLE


def exact_engine(spec: CollectionSpec, folder: Path) -> CollectionIndex:
    """The index a collection answers from before training: exact, float16."""
    if spec.multivector:
        return ExactMultiEngine(folder, spec.dim)
    flat = FlatSpec(metric="l2" if spec.metric == "l2" else "ip")
    return SingleEngine(build_index(Float16Spec(), flat, spec.dim, folder))


def final_engine(spec: CollectionSpec, folder: Path) -> CollectionIndex:
    """The collection's own encoder and index (untrained when the spec needs training)."""
    if spec.multivector:
        mv = build_multivector_index(spec.encoder, spec.index, spec.dim, folder)  # type: ignore[arg-type]
        return MultiEngine(mv, _oversample(spec))
    return SingleEngine(build_index(spec.encoder, spec.index, spec.dim, folder))


def initial_engine(spec: CollectionSpec, folder: Path) -> CollectionIndex:
    """What a new collection starts with."""
    return exact_engine(spec, folder) if spec.needs_training else final_engine(spec, folder)


def check_buildable(spec: CollectionSpec) -> None:
    """Refuse specs the library cannot build (e.g. pq m above dim, hnsw over pq codes)."""
    with tempfile.TemporaryDirectory(prefix="pith-check-") as tmp:
        try:
            final_engine(spec, Path(tmp))
        except (ValueError, TypeError, AssertionError) as exc:
            raise InvalidSpec(f"cannot build this collection: {exc}") from exc


def load_engine(kind: str, folder: Path, spec: CollectionSpec) -> CollectionIndex:
    """An engine saved by `save` in `folder` (its append-only files stay in place)."""
    if kind == "single":
        return SingleEngine(load_index(folder))
    if kind == "multi":
        return MultiEngine(load_multivector_index(folder), _oversample(spec))
    doc = read_manifest(folder, "exact_multivector")
    alive = load_npy(folder, ["alive"])["alive"]
    return ExactMultiEngine(folder, int(doc["dim"]), np.asarray(alive))
