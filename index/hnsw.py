"""HNSW graph over float vectors (float32 or float16 storage).

HNSW cannot delete, so removal is a tombstone: the graph keeps the node, a position bitmap
excludes it from every search (together with the caller's id filter).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import InvalidSpec
from encoders.base import Encoder
from encoders.identity import Float16Encoder, Float32Encoder
from index.base import Index
from index.codecs import faiss_metric, vector_bytes
from index.filters import bitmap_selector, search_parameters
from index.spec import HNSWSpec, SearchParams
from kernels.rerank import dense_scores
from kernels.topk import topk

BRUTE_FORCE_MAX = 8192  # filtered searches over at most this many points are exact scans


def hnsw_index(encoder: Encoder, spec: HNSWSpec) -> faiss.IndexHNSW:
    mt = faiss_metric(spec.metric)
    if isinstance(encoder, Float32Encoder):
        index = faiss.IndexHNSWFlat(encoder.dim, spec.m, mt)
    elif isinstance(encoder, Float16Encoder):
        index = faiss.IndexHNSWSQ(encoder.dim, faiss.ScalarQuantizer.QT_fp16, spec.m, mt)
    else:
        raise InvalidSpec(f"hnsw holds float32 or float16 vectors, not {encoder.kind!r} codes")
    index.hnsw.efConstruction = spec.ef_construction
    index.hnsw.efSearch = spec.ef_search
    return index


class HNSWIndex(Index):
    """A FAISS HNSW graph; positions map to ids through an array, deletions are tombstones."""

    def __init__(self, encoder: Encoder, spec: HNSWSpec, folder: Path | None = None) -> None:
        if spec.rerank.enabled:
            raise InvalidSpec("hnsw stores float vectors already: re-rank adds nothing")
        super().__init__(encoder, spec, folder)
        self.faiss = hnsw_index(encoder, spec)
        self.ids = np.zeros(0, dtype=np.int64)
        self.alive = np.zeros(0, dtype=bool)

    @property
    def ntotal(self) -> int:
        return int(self.alive.sum())

    @property
    def is_trained(self) -> bool:
        return True

    def train(self, x: np.ndarray) -> None:
        self.encoder.fit(x)

    def _base_index(self) -> faiss.Index:
        return self.faiss

    def _base_params(self, params: SearchParams, allowed: np.ndarray | None) -> Any:
        raise NotImplementedError("hnsw searches through _candidates")

    def _add(self, ids: np.ndarray, x: np.ndarray) -> None:
        self.faiss.add(x)
        self.ids = np.concatenate([self.ids, ids])
        self.alive = np.concatenate([self.alive, np.ones(len(ids), dtype=bool)])

    def _remove(self, ids: np.ndarray) -> int:
        hit = np.isin(self.ids, ids) & self.alive
        self.alive[hit] = False
        return len(np.unique(self.ids[hit]))

    def _candidates(
        self, xq: np.ndarray, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        mask = self.alive if allowed is None else self.alive & np.isin(self.ids, allowed)
        positions = np.flatnonzero(mask)
        if allowed is not None and len(positions) <= max(BRUTE_FORCE_MAX, len(mask) // 10):
            return self._exact(xq, k, positions)  # a graph walk would miss a sparse filter
        ef = max(params.ef_search or self.spec.ef_search, k)
        sp = search_parameters(faiss.SearchParametersHNSW(efSearch=ef), None, bitmap_selector(mask))
        dist, pos = self.faiss.search(xq, k, params=sp)
        short = (pos < 0).sum(1) > max(k - len(positions), 0)
        if short.any():  # the walk got stuck in excluded regions: answer those exactly
            dist[short], pos[short] = self._exact_positions(xq[short], k, positions)
        return dist, np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)

    def _exact_positions(
        self, xq: np.ndarray, k: int, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Exact (distances, positions) over the given positions only."""
        vectors = self.faiss.storage.reconstruct_batch(positions)
        scores = dense_scores(xq, vectors, self.metric)
        best, pos = topk(scores, np.broadcast_to(positions, scores.shape), k)
        return (best if self.metric == "ip" else -best), pos

    def _exact(
        self, xq: np.ndarray, k: int, positions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        dist, pos = self._exact_positions(xq, k, positions)
        return dist, np.where(pos >= 0, self.ids[np.maximum(pos, 0)], -1)

    def _structure_bytes(self) -> int:
        h = self.faiss.hnsw
        graph = sum(vector_bytes(v) for v in (h.neighbors, h.offsets, h.levels))
        storage = faiss.downcast_index(self.faiss.storage)
        return graph + vector_bytes(storage.codes) + self.ids.nbytes + self.alive.nbytes
