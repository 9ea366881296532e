"""The Index interface: 64-bit ids; add, remove, search with an optional id filter; an optional
exact re-rank from a memory-mapped float16 file; save/load to a directory with a manifest.

Labels: FAISS holds external ids directly, except with re-rank on, where FAISS holds row numbers
of the re-rank file (so the re-rank reads rows directly) and the file maps rows to ids.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import faiss
import numpy as np
from pydantic import TypeAdapter

from core.arrays import as_ids, as_matrix
from core.errors import InvalidInput, NotTrained
from encoders.base import Encoder
from index.gpu import GpuSearcher, gpu_searcher
from index.spec import IndexSpec, SearchParams
from index.vectors import VectorFile
from kernels import native
from kernels.rerank import rerank

INDEX_SPEC: TypeAdapter[Any] = TypeAdapter(IndexSpec)
MAX_K = 100_000
MAX_CACHED_PARAMS = 64  # distinct search settings whose FAISS parameter objects are kept
# Below this many queries a search is one FAISS call where it can be (FAISS's coarse stage and
# IndexRefine): pith's own stages save less per query than their numpy calls cost.
FEW_QUERIES = 8


def temp_folder(owner: object, prefix: str) -> Path:
    """A new temporary folder for the files of `owner` (an index given no folder), removed
    when `owner` is garbage collected or at exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    weakref.finalize(owner, shutil.rmtree, path, True)
    return path


@dataclass(frozen=True)
class SearchResult:
    """Scores (nq, k) float32 and ids (nq, k) int64; missing results have id -1.

    Scores are inner products (larger is better) or squared L2 distances (smaller is better).
    """

    scores: np.ndarray
    ids: np.ndarray


class Index(ABC):
    """Codes of one encoder organised for search; FAISS holds the codes."""

    def __init__(self, encoder: Encoder, spec: Any, folder: Path | None = None) -> None:
        self.encoder = encoder
        self.spec = spec
        self.dim = encoder.dim
        self.metric: str = spec.metric
        self.folder = Path(folder) if folder is not None else None
        self.vectors: VectorFile | None = None
        self._refine: tuple[Any, Any, faiss.IndexRefine] | None = None
        self._param_cache: dict[tuple[Any, ...], Any] = {}
        self._gpu: GpuSearcher | None = None
        self._gpu_of: faiss.Index | None = None  # the FAISS index the GPU copy was made from
        if spec.rerank.enabled:
            dim = encoder.out_dim if encoder.isometric else encoder.dim
            self.vectors = VectorFile(self._rerank_folder(), dim, self.metric)

    def _rerank_folder(self) -> Path:
        if self.folder is None:
            self.folder = temp_folder(self, "pith-index-")
        return self.folder / "rerank"

    # what subclasses provide ---------------------------------------------------------------
    @property
    @abstractmethod
    def ntotal(self) -> int:
        """Number of vectors held."""

    @property
    @abstractmethod
    def is_trained(self) -> bool:
        """Whether the encoder and any coarse quantizer are trained."""

    @abstractmethod
    def train(self, x: np.ndarray) -> None:
        """Fit the encoder and the index structures on a sample."""

    @abstractmethod
    def _add(self, labels: np.ndarray, x: np.ndarray) -> None:
        """Encode and store validated vectors under FAISS labels."""

    @abstractmethod
    def _remove(self, labels: np.ndarray) -> int:
        """Remove labels; return how many were present."""

    @abstractmethod
    def _base_index(self) -> faiss.Index:
        """The FAISS index that scans the codes."""

    @abstractmethod
    def _base_params(self, params: SearchParams, allowed: np.ndarray | None) -> Any:
        """FAISS search parameters (nprobe, efSearch, id selector over labels)."""

    @abstractmethod
    def _structure_bytes(self) -> int:
        """RAM of the FAISS structures and the encoder's parameters."""

    def _candidates(
        self, xv: np.ndarray, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        """FAISS (distances, labels) of the k best codes per query; xv holds the queries in
        the encoder's score space (`query_view`)."""
        if allowed is None:
            sp = self._shared_params(("base", params), lambda: self._base_params(params, None))
        else:
            sp = self._base_params(params, allowed)
        base = self._base_index()
        if self._gpu_of is not base:  # GPU copy (or torch scan) of the codes, made on demand
            self._gpu, self._gpu_of = gpu_searcher(base, self.encoder, self.metric), base
        if self._gpu is not None:
            return self._gpu.search(xv, k, allowed, sp)
        return self._cpu_search(xv, k, sp)

    def _shared_params(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        """FAISS search parameters without a filter, made once per setting and shared: FAISS
        only reads them, and making them costs microseconds, as much as a query's re-rank."""
        sp = self._param_cache.get(key)
        if sp is None:
            sp = make()
            if len(self._param_cache) < MAX_CACHED_PARAMS:
                self._param_cache[key] = sp
        return sp

    def _cpu_search(self, xq: np.ndarray, k: int, sp: Any) -> tuple[np.ndarray, np.ndarray]:
        """FAISS's own search of the codes (queries already in the encoder's score space)."""
        return self._base_index().search(xq, k, params=sp)

    # writes --------------------------------------------------------------------------------
    def add(self, ids: object, x: object) -> None:
        """Add vectors under int64 ids (an id already present is the caller's to remove)."""
        x = as_matrix(x, self.dim)
        ids = as_ids(ids, len(x))
        if not self.is_trained:
            raise NotTrained(f"{type(self).__name__}: train() before add()")
        if len(x) == 0:
            return
        self._gpu_of = None  # the GPU copy is a snapshot: recopied on the next search
        labels = ids
        if self.vectors is not None:
            stored = self.encoder.isometry(x) if self.encoder.isometric else x
            labels = self.vectors.append(ids, stored)
        self._add(labels, x)

    def remove(self, ids: object) -> int:
        """Remove ids; returns the number removed."""
        ids = as_ids(ids)
        if not len(ids) or not self.is_trained:
            return 0
        labels = self.vectors.rows_matching(ids) if self.vectors is not None else ids
        self._gpu_of = None
        return self._remove(labels) if len(labels) else 0

    # search --------------------------------------------------------------------------------
    def search(
        self,
        xq: object,
        k: int,
        params: SearchParams | None = None,
        allowed: object | None = None,
    ) -> SearchResult:
        """The k best ids per query; `allowed` restricts the search to those ids (a filter
        applied inside the scan, so k results come back whenever k allowed ids exist)."""
        xq = as_matrix(xq, self.dim, name="queries")
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be in [1, {MAX_K}], got {k}")
        params = params or SearchParams()
        allowed_ids = None if allowed is None else as_ids(allowed, name="allowed")
        if not self.is_trained:
            raise NotTrained(f"{type(self).__name__} is not trained")
        if self.vectors is None:
            dist, ids = self._candidates(self.encoder.query_view(xq), k, params, allowed_ids)
            return SearchResult(_clean_scores(dist, ids, self.metric), ids)
        allowed_rows = None if allowed_ids is None else self.vectors.rows_matching(allowed_ids)
        on = params.rerank if params.rerank is not None else self.spec.rerank.enabled
        if on:
            oversample = params.oversample or self.spec.rerank.oversample
            dist, rows = self._reranked(xq, k, oversample, params, allowed_rows)
        else:
            dist, rows = self._candidates(self.encoder.query_view(xq), k, params, allowed_rows)
        ids = self.vectors.ids_of(rows)
        return SearchResult(_clean_scores(dist, ids, self.metric), ids)

    def _reranked(
        self,
        xq: np.ndarray,
        k: int,
        oversample: float,
        params: SearchParams,
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k after re-scoring ceil(k x oversample) candidates exactly from the fp16 file.

        Isometric encoders store their score-space view, so queries are re-scored in it. The
        compiled kernel (`kernels.native`) re-scores when it was built; without it, and for
        fewer than FEW_QUERIES queries, FAISS's IndexRefine does for isometric encoders (in
        C++, one call) and numpy for the others."""
        assert self.vectors is not None
        xv = self.encoder.query_view(xq)
        if self.encoder.isometric and (len(xq) < FEW_QUERIES or not native.available()):
            sp = self._refine_search_params(oversample, params, allowed)
            return self._refine_index().search(xv, k, params=sp)
        n_cand = max(k, math.ceil(k * oversample))
        _, cand = self._candidates(xv, n_cand, params, allowed)
        xr = xv if self.encoder.isometric else xq
        scores, rows = rerank(xr, cand, cand, self.vectors.vectors, k, self.metric)
        return scores, rows

    def _refine_search_params(
        self, oversample: float, params: SearchParams, allowed: np.ndarray | None
    ) -> Any:
        """IndexRefine's search parameters (shared without a filter: `_shared_params`)."""

        def make() -> Any:
            return faiss.IndexRefineSearchParameters(
                k_factor=float(oversample), base_index_params=self._base_params(params, allowed)
            )

        if allowed is not None:
            return make()
        return self._shared_params(("refine", float(oversample), params), make)

    def _refine_index(self) -> faiss.IndexRefine:
        """IndexRefine over the base index and the memory-mapped fp16 rows (rebuilt after adds)."""
        assert self.vectors is not None
        base, rows = self._base_index(), self.vectors.faiss_index()
        if self._refine is None or self._refine[0] is not base or self._refine[1] is not rows:
            # the constructor insists on equal sizes (search does not: removed points stay in
            # the row file), so it gets the rows twice and the base afterwards; changing
            # base.ntotal for it instead raced with searches of the base in other threads
            refine = faiss.IndexRefine(rows, rows)
            refine.base_index = base
            self._refine = (base, rows, refine)
        return self._refine[2]

    # persistence and accounting ------------------------------------------------------------
    def bytes_in_ram(self) -> int:
        """Bytes held in RAM by codes, ids and every index structure (not the re-rank file)."""
        extra = self.vectors.bytes_in_ram() if self.vectors is not None else 0
        return self._structure_bytes() + extra

    def bytes_on_disk(self) -> int:
        """Bytes of the re-rank files (what search reads from disk instead of RAM)."""
        return self.vectors.bytes_on_disk() if self.vectors is not None else 0

    def copy_rerank_to(self, folder: Path) -> None:
        """Place the re-rank files in `folder` (for save to a new directory)."""
        if self.vectors is None:
            return
        self.vectors.flush()
        target = Path(folder) / "rerank"
        if target.resolve() != self.vectors.folder.resolve():
            shutil.copytree(self.vectors.folder, target, dirs_exist_ok=True)


def _clean_scores(dist: np.ndarray, ids: np.ndarray, metric: str) -> np.ndarray:
    """FAISS pads missing results with +-max float; make those -inf/inf explicitly."""
    dist = np.asarray(dist, dtype=np.float32).copy()
    dist[ids < 0] = -np.inf if metric == "ip" else np.inf
    return dist
