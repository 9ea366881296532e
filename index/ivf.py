"""Inverted file: a k-means coarse quantizer and codes per list (float, PQ, fast-scan PQ, SDC)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.errors import InvalidSpec
from encoders.base import Codebooked, Encoder
from encoders.identity import Float16Encoder, Float32Encoder
from encoders.pq import PQEncoder
from index.base import FEW_QUERIES, Index
from index.codecs import (
    add_to_lists,
    encoder_bytes,
    exact_codes,
    faiss_metric,
    install_codebooks,
    vector_bytes,
)
from index.filters import search_parameters
from index.spec import IVFSpec, SearchParams
from kernels.coarse import nearest_lists


def coarse_centroids(z: np.ndarray, spec: IVFSpec) -> np.ndarray:
    """nlist k-means centroids of z (seeded); unit-norm (spherical k-means) for inner product.

    Lists are assigned by the largest inner product, which favours long centroids: plain
    k-means means of unit vectors have uneven norms (0.56 on average on wordnet-minilm), so
    vectors land in the list of a long centroid rather than a near one. Spherical centroids
    (FAISS's own default for IVF with METRIC_INNER_PRODUCT) keep assignment and probing
    consistent with the clustering."""
    if len(z) < spec.nlist:
        raise InvalidSpec(f"ivf: {len(z)} training vectors for nlist={spec.nlist}")
    rng = np.random.default_rng(spec.seed)
    if len(z) > spec.max_train:
        z = z[np.sort(rng.choice(len(z), size=spec.max_train, replace=False))]
    km = faiss.Kmeans(
        z.shape[1],
        spec.nlist,
        niter=spec.train_iterations,
        seed=spec.seed,
        spherical=spec.metric == "ip",
    )
    km.cp.max_points_per_centroid = 1 << 20
    km.train(np.ascontiguousarray(z, dtype=np.float32))
    return np.ascontiguousarray(km.centroids, dtype=np.float32)


def _empty_ivf(encoder: Encoder, spec: IVFSpec, quantizer: faiss.Index) -> faiss.IndexIVF:
    mt = faiss_metric(spec.metric)
    d = encoder.out_dim
    if isinstance(encoder, Float32Encoder):
        return faiss.IndexIVFFlat(quantizer, d, spec.nlist, mt)
    if isinstance(encoder, Float16Encoder):
        qt = faiss.ScalarQuantizer.QT_fp16
        return faiss.IndexIVFScalarQuantizer(quantizer, d, spec.nlist, qt, mt, spec.by_residual)
    if isinstance(encoder, Codebooked):
        m = encoder.codebooks().shape[0]
        if encoder.nbits == 4 and isinstance(encoder, PQEncoder):
            return faiss.IndexIVFPQFastScan(quantizer, d, spec.nlist, m, 4, mt, 32)
        return faiss.IndexIVFPQ(quantizer, d, spec.nlist, m, encoder.nbits, mt)
    raise InvalidSpec(f"no ivf index for encoder {encoder.kind!r}")


class IVFIndex(Index):
    """FAISS IVF over the encoder's codes; ids are stored in the inverted lists (8 B each)."""

    def __init__(self, encoder: Encoder, spec: IVFSpec, folder: Path | None = None) -> None:
        super().__init__(encoder, spec, folder)
        own_codes = isinstance(encoder, Codebooked) and not isinstance(encoder, PQEncoder)
        if spec.by_residual and own_codes:
            raise InvalidSpec(f"ivf over {encoder.kind!r} codes needs by_residual=false")
        self.faiss: faiss.IndexIVF | None = None
        self._coarse: tuple[faiss.IndexIVF, np.ndarray, np.ndarray] | None = None

    @property
    def ntotal(self) -> int:
        return int(self.faiss.ntotal) if self.faiss is not None else 0

    @property
    def is_trained(self) -> bool:
        return self.faiss is not None

    def train(self, x: np.ndarray) -> None:
        """Coarse centroids, then the encoder (on residuals when by_residual)."""
        enc, spec = self.encoder, self.spec
        if isinstance(enc, PQEncoder):
            sample = enc._sample(x)
            enc.fit_rotation(sample)
            z = enc.transform(sample)
            centroids = coarse_centroids(z, spec)
            if spec.by_residual:
                z = z - centroids[_assign(centroids, z, self.metric)]
            enc.fit_codebooks(z)
        else:
            enc.fit(x)
            centroids = coarse_centroids(self._coarse_view(x), spec)
        self.faiss = self._build(centroids)

    def _coarse_view(self, x: np.ndarray) -> np.ndarray:
        """Vectors in the space the coarse quantizer sees (the encoder's score space)."""
        if isinstance(self.encoder, PQEncoder):
            return self.encoder.transform(x)
        if isinstance(self.encoder, Codebooked):
            return self.encoder.query_view(x)
        return x

    def _build(self, centroids: np.ndarray) -> faiss.IndexIVF:
        quantizer = faiss.IndexFlat(centroids.shape[1], faiss_metric(self.metric))
        quantizer.add(centroids)
        index = _empty_ivf(self.encoder, self.spec, quantizer)
        index.own_fields = True
        quantizer.this.disown()
        if not isinstance(index, faiss.IndexIVFFlat):
            index.by_residual = bool(self.spec.by_residual)
        if isinstance(self.encoder, Codebooked):
            install_codebooks(index.pq, self.encoder.codebooks())
            if isinstance(index, faiss.IndexIVFPQ) and self.metric == "l2" and index.by_residual:
                index.precompute_table()
        index.is_trained = True
        index.nprobe = self.spec.nprobe
        return index

    def _add(self, labels: np.ndarray, x: np.ndarray) -> None:
        index = self._base_index()
        enc = self.encoder
        if isinstance(enc, Codebooked) and not exact_codes(enc):
            # codes chosen by the encoder itself (not nearest centroid): listed by hand
            z = self._coarse_view(x)
            lists = index.quantizer.search(z, 1)[1].ravel()
            if isinstance(enc, PQEncoder):
                target = z - self._centroids()[lists] if index.by_residual else z
                codes = enc.encode_target(target, z)
            else:
                codes = enc.encode(x)
            add_to_lists(index, lists, labels, codes)
        else:
            index.add_with_ids(self._coarse_view(x), labels)

    def _centroids(self) -> np.ndarray:
        quantizer = faiss.downcast_index(self._base_index().quantizer)
        return faiss.rev_swig_ptr(quantizer.get_xb(), quantizer.ntotal * quantizer.d).reshape(
            quantizer.ntotal, quantizer.d
        )

    def _cpu_search(self, xq: np.ndarray, k: int, sp: Any) -> tuple[np.ndarray, np.ndarray]:
        """The coarse stage in one matrix product (`kernels.coarse`; FAISS's quantizer for a
        few queries), then FAISS's scan of the chosen lists (search_preassigned, with the same
        parameters and id filter)."""
        index = self._base_index()
        nq, nprobe = len(xq), int(sp.nprobe)
        if nq == 0:
            return np.empty((0, k), np.float32), np.empty((0, k), np.int64)
        xq = np.ascontiguousarray(xq, dtype=np.float32)
        if nq < FEW_QUERIES:  # numpy's per-call overhead outweighs FAISS's heaps
            coarse_dist, lists = index.quantizer.search(xq, nprobe)
        else:
            centroids, sq_norms = self._coarse_centroids()
            coarse_dist, lists = nearest_lists(xq, centroids, sq_norms, nprobe, self.metric)
        return search_lists(index, xq, k, lists, coarse_dist, sp)

    def _coarse_centroids(self) -> tuple[np.ndarray, np.ndarray]:
        """The coarse centroids and their squared norms (computed once per trained index)."""
        index = self._base_index()
        if self._coarse is None or self._coarse[0] is not index:
            c = np.array(self._centroids(), dtype=np.float32)
            self._coarse = (index, c, np.einsum("ij,ij->i", c, c))
        return self._coarse[1], self._coarse[2]

    def _remove(self, labels: np.ndarray) -> int:
        return int(self._base_index().remove_ids(faiss.IDSelectorBatch(labels)))

    def _base_index(self) -> faiss.IndexIVF:
        assert self.faiss is not None
        return self.faiss

    def _base_params(self, params: SearchParams, allowed: np.ndarray | None) -> Any:
        nprobe = min(params.nprobe or self.spec.nprobe, self.spec.nlist)
        return search_parameters(faiss.SearchParametersIVF(nprobe=nprobe), allowed)

    def _structure_bytes(self) -> int:
        if self.faiss is None:
            return encoder_bytes(self.encoder)
        return ivf_bytes(self.faiss) + unshared_encoder_bytes(self.encoder)


def search_lists(
    index: faiss.IndexIVF,
    xq: np.ndarray,
    k: int,
    lists: np.ndarray,
    coarse_dist: np.ndarray,
    sp: Any,
) -> tuple[np.ndarray, np.ndarray]:
    """FAISS's scan of the lists already chosen for each query (search_preassigned): xq
    float32 (nq, d), lists int64 and coarse_dist float32 (nq, sp.nprobe), all C-contiguous."""
    nq = len(xq)
    dist, labels = np.empty((nq, k), np.float32), np.empty((nq, k), np.int64)
    ptr = faiss.swig_ptr
    index.search_preassigned_c(
        nq, ptr(xq), k, ptr(lists), ptr(coarse_dist), ptr(dist), ptr(labels), False, sp
    )
    return dist, labels


def _assign(centroids: np.ndarray, z: np.ndarray, metric: str) -> np.ndarray:
    q = faiss.IndexFlat(centroids.shape[1], faiss_metric(metric))
    q.add(centroids)
    return q.search(np.ascontiguousarray(z), 1)[1].ravel()


def ivf_bytes(index: faiss.IndexIVF) -> int:
    """Codes (with fast-scan block padding), ids and coarse centroids, as held in RAM."""
    invlists = index.invlists
    total = 0
    for list_no in range(index.nlist):
        size = invlists.list_size(list_no)
        if isinstance(index, faiss.IndexIVFFastScan):
            blocks = -(-size // index.bbs)
            total += blocks * index.bbs * index.M2 // 2
        else:
            total += size * index.code_size
        total += size * 8
    quantizer = faiss.downcast_index(index.quantizer)
    total += vector_bytes(quantizer.codes)
    if hasattr(index, "pq"):
        total += vector_bytes(index.pq.centroids)
    return total


def unshared_encoder_bytes(encoder: Encoder) -> int:
    """Encoder parameters not already counted in the FAISS index (PQ codebooks are)."""
    state = encoder.state()
    state.pop("codebooks", None)
    return int(sum(a.nbytes for a in state.values()))
