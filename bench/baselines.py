"""FAISS baselines measured in the same run as pith: flat, PQ, OPQ, sign bits, IVF-PQ,
IVF-PQ fast-scan with a re-rank from a memory-mapped float16 file, HNSW-Flat."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from bench.harness import Builder, Built, K
from index.ivf import ivf_bytes
from kernels.rerank import rerank

IP = faiss.METRIC_INNER_PRODUCT


def _vec_bytes(v: object) -> int:
    return int(faiss.vector_to_array(v).nbytes)


def flat_ip() -> Builder:
    def build(xb: np.ndarray, folder: Path) -> Built:
        index = faiss.IndexFlatIP(xb.shape[1])
        index.add(xb)
        return Built(lambda q: index.search(q, K)[1], xb.shape[1] * 4.0)

    return build


def factory(key: str, nprobe: int | None = None) -> Builder:
    """A FAISS index_factory string (IP metric), trained on the base vectors."""

    def build(xb: np.ndarray, folder: Path) -> Built:
        index = faiss.index_factory(xb.shape[1], key, IP)
        index.train(xb)
        index.add(xb)
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None and nprobe is not None:
            ivf.nprobe = nprobe
        return Built(lambda q: index.search(q, K)[1], _factory_bytes(index) / len(xb))

    return build


def _factory_bytes(index: faiss.Index) -> int:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        chain = sum(
            _vec_bytes(faiss.downcast_VectorTransform(index.chain.at(i)).A)
            for i in range(index.chain.size())
        )
        return chain + _factory_bytes(index.index)
    if isinstance(index, faiss.IndexIVF):
        return ivf_bytes(index)
    if isinstance(index, faiss.IndexPQ):
        return _vec_bytes(index.codes) + _vec_bytes(index.pq.centroids)
    if isinstance(index, faiss.IndexHNSW):
        h = index.hnsw
        graph = sum(_vec_bytes(v) for v in (h.neighbors, h.offsets, h.levels))
        return graph + _vec_bytes(faiss.downcast_index(index.storage).codes)
    raise TypeError(f"no byte count for {type(index).__name__}")


def hnsw_flat(m: int = 32, ef_search: int = 64) -> Builder:
    def build(xb: np.ndarray, folder: Path) -> Built:
        index = faiss.IndexHNSWFlat(xb.shape[1], m, IP)
        index.add(xb)
        index.hnsw.efSearch = ef_search
        return Built(lambda q: index.search(q, K)[1], _factory_bytes(index) / len(xb))

    return build


def fp16_file(xb: np.ndarray, folder: Path) -> np.ndarray:
    """The base vectors as a float16 file on disk, memory-mapped."""
    path = folder / "vectors.f16"
    xb.astype(np.float16).tofile(path)
    return np.memmap(path, dtype=np.float16, mode="r", shape=xb.shape)


def sign_bits(rerank_k: int = 0) -> Builder:
    """IndexBinaryFlat over sign bits (Hamming); optionally re-rank rerank_k from fp16 on disk."""

    def build(xb: np.ndarray, folder: Path) -> Built:
        d = xb.shape[1]
        index = faiss.IndexBinaryFlat(d)
        index.add(np.packbits(xb > 0, axis=1))
        if not rerank_k:
            return Built(lambda q: index.search(np.packbits(q > 0, axis=1), K)[1], d / 8)
        vectors = fp16_file(xb, folder)

        def search(q: np.ndarray) -> np.ndarray:
            _, cand = index.search(np.packbits(q > 0, axis=1), rerank_k)
            return rerank(q, cand, cand, vectors, K)[1]

        return Built(search, d / 8, d * 2.0)

    return build


def float16_file(xb: np.ndarray, path: Path) -> faiss.Index:
    """The vectors as a float16 IndexScalarQuantizer written to `path` and memory-mapped
    back (IO_FLAG_MMAP_IFC): a re-rank stage that costs disk, not RAM."""
    sq = faiss.IndexScalarQuantizer(xb.shape[1], faiss.ScalarQuantizer.QT_fp16, IP)
    sq.add(xb)
    faiss.write_index(sq, str(path))
    return faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC)


def refine_from_disk(key: str, nprobe: int, rerank_k: int) -> Builder:
    """A FAISS index whose top rerank_k are re-scored by IndexRefine from a float16
    IndexScalarQuantizer that is memory-mapped from disk (IO_FLAG_MMAP_IFC)."""

    def build(xb: np.ndarray, folder: Path) -> Built:
        d = xb.shape[1]
        base = faiss.index_factory(d, key, IP)
        base.train(xb)
        base.add(xb)
        faiss.extract_index_ivf(base).nprobe = nprobe
        refine_sq = float16_file(xb, folder / "refine.faiss")
        index = faiss.IndexRefine(base, refine_sq)
        index.k_factor = rerank_k / K
        keep = (base, refine_sq)

        def search(q: np.ndarray) -> np.ndarray:
            assert keep
            return index.search(q, K)[1]

        return Built(search, _factory_bytes(base) / len(xb), d * 2.0)

    return build
