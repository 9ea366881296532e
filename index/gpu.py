"""Searching an index's codes on a GPU: FAISS GPU indexes with faiss-gpu, else a torch scan.

`gpu_searcher(index, encoder, metric)` returns an object whose `search(xq_view, k, allowed)`
answers like the FAISS index's search (distances in FAISS's convention, labels), or None when
the CPU FAISS index should answer:
- with faiss-gpu (`faiss.get_num_gpus() > 0`), `index_cpu_to_gpu` for the types FAISS supports
  there (a filtered search, or a type FAISS refuses, falls back to the paths below);
- on the torch path (`kernels.dispatch.backend() == 'torch'`: CUDA present, or forced with
  PITH_KERNELS=torch), exhaustive structures are copied to the torch device: PQ-layout codes of
  a one-list IVF (how `index.codecs.flat_index` holds Codebooked encoders) scanned with ADC
  tables, and float16/float32 vectors of an IndexIDMap scanned by inner product.

The copy is a snapshot: whoever holds a searcher drops it after adds and removes.
"""

from __future__ import annotations

from typing import Any, Protocol

import faiss
import numpy as np
import torch

from core.device import faiss_gpus
from encoders.base import Codebooked, Encoder
from kernels import dispatch
from kernels.torch_scan import adc_tables, fp16_ip_topk, lut_topk

Result = tuple[np.ndarray, np.ndarray]


class GpuSearcher(Protocol):
    def search(self, xq: np.ndarray, k: int, allowed: np.ndarray | None, params: Any) -> Result:
        """(distances, labels) of the k best codes for queries already in score space."""


class FaissGpuSearcher:
    """A FAISS GPU copy of a CPU index; filtered searches go to the CPU index."""

    def __init__(self, index: faiss.Index) -> None:
        self.cpu = index
        self.resources = faiss.StandardGpuResources()
        self.gpu = faiss.index_cpu_to_gpu(self.resources, 0, index)

    def search(self, xq: np.ndarray, k: int, allowed: np.ndarray | None, params: Any) -> Result:
        if allowed is not None:  # FAISS GPU indexes do not all take an IDSelector
            return self.cpu.search(xq, k, params=params)
        nprobe = getattr(params, "nprobe", None)
        if nprobe is not None and hasattr(self.gpu, "nprobe"):
            self.gpu.nprobe = nprobe
        return self.gpu.search(xq, k)


def _scan_result(scores: torch.Tensor, ids: torch.Tensor, metric: str) -> Result:
    """Torch (larger-is-better scores, ids) as FAISS answers: L2 as squared distances."""
    s = dispatch.to_numpy(scores)
    return (-s if metric == "l2" else s), dispatch.to_numpy(ids)


def _allowed_mask(ids: torch.Tensor, allowed: np.ndarray | None) -> torch.Tensor | None:
    if allowed is None:
        return None
    return torch.isin(ids, dispatch.to_device(np.asarray(allowed, np.int64), ids.device))


class TorchCodeScan:
    """PQ-layout codes and their labels on the torch device, scanned with ADC tables."""

    def __init__(
        self, codes: np.ndarray, ids: np.ndarray, books: np.ndarray, nbits: int, metric: str
    ) -> None:
        dev = dispatch.device()
        self.codes = dispatch.to_device(codes, dev)
        self.ids = dispatch.to_device(ids.astype(np.int64), dev)
        self.books = dispatch.to_device(books.astype(np.float32), dev)
        self.nbits = nbits
        self.metric = metric

    def search(self, xq: np.ndarray, k: int, allowed: np.ndarray | None, params: Any) -> Result:
        q = dispatch.to_device(np.asarray(xq, np.float32), self.books.device)
        luts = adc_tables(q, self.books, self.metric)
        mask = _allowed_mask(self.ids, allowed)
        scores, ids = lut_topk(luts, self.codes, self.nbits, k, ids=self.ids, allowed=mask)
        return _scan_result(scores, ids, self.metric)


class TorchVectorScan:
    """float16/float32 vectors and their labels on the torch device, inner-product scan."""

    def __init__(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        dev = dispatch.device()
        self.vectors = dispatch.to_device(vectors, dev)
        self.ids = dispatch.to_device(ids.astype(np.int64), dev)

    def search(self, xq: np.ndarray, k: int, allowed: np.ndarray | None, params: Any) -> Result:
        q = dispatch.to_device(np.asarray(xq, np.float32), self.vectors.device)
        mask = _allowed_mask(self.ids, allowed)
        if mask is None:
            scores, ids = fp16_ip_topk(q, self.vectors, k, ids=self.ids)
        else:
            keep = mask.nonzero()[:, 0]
            scores, ids = fp16_ip_topk(q, self.vectors[keep], k, ids=self.ids[keep])
        return _scan_result(scores, ids, "ip")


def list_contents(index: faiss.IndexIVF) -> tuple[np.ndarray, np.ndarray]:
    """(codes (n, code_size) uint8, ids (n,) int64) of every inverted list, list by list."""
    invlists: Any = index.invlists
    size = index.code_size
    codes, ids = [np.zeros((0, size), np.uint8)], [np.zeros(0, np.int64)]
    for list_no in range(index.nlist):
        n = invlists.list_size(list_no)
        if n:
            raw = faiss.rev_swig_ptr(invlists.get_codes(list_no), n * size)
            codes.append(np.array(raw, dtype=np.uint8).reshape(n, size))
            ids.append(np.array(faiss.rev_swig_ptr(invlists.get_ids(list_no), n), dtype=np.int64))
    return np.concatenate(codes), np.concatenate(ids)


def id_map_contents(index: faiss.Index) -> tuple[np.ndarray, np.ndarray] | None:
    """(vectors (n, d) float16/float32, ids) of an IndexIDMap over a flat or fp16 SQ index."""
    if not isinstance(index, faiss.IndexIDMap):
        return None
    inner: Any = faiss.downcast_index(index.index)
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    if isinstance(inner, faiss.IndexFlat):
        return faiss.vector_to_array(inner.codes).view(np.float32).reshape(-1, inner.d), ids
    fp16 = (
        isinstance(inner, faiss.IndexScalarQuantizer)
        and inner.sq.qtype == faiss.ScalarQuantizer.QT_fp16
    )
    if fp16:
        return faiss.vector_to_array(inner.codes).view(np.float16).reshape(-1, inner.d), ids
    return None


def torch_searcher(index: faiss.Index, encoder: Encoder, metric: str) -> GpuSearcher | None:
    """A torch scan over an exhaustive structure's codes, or None for other structures."""
    if isinstance(index, faiss.IndexIVF) and index.nlist == 1 and not index.by_residual:
        if isinstance(encoder, Codebooked) and encoder.nbits <= 16:
            codes, ids = list_contents(index)
            return TorchCodeScan(codes, ids, encoder.codebooks(), encoder.nbits, metric)
        return None
    contents = id_map_contents(index)
    if contents is None or metric != "ip":
        return None
    return TorchVectorScan(*contents)


def faiss_gpu_searcher(index: faiss.Index) -> GpuSearcher | None:
    """A FAISS GPU copy of the index, or None without faiss-gpu or for unsupported types."""
    if faiss_gpus() == 0:
        return None
    try:
        return FaissGpuSearcher(index)
    except (RuntimeError, AttributeError):  # FAISS has no GPU version of this index type
        return None


def gpu_searcher(index: faiss.Index, encoder: Encoder, metric: str) -> GpuSearcher | None:
    """The GPU path for this index (see the module docstring), or None for the CPU index."""
    searcher = faiss_gpu_searcher(index)
    if searcher is not None:
        return searcher
    if dispatch.backend() != "torch":
        return None
    return torch_searcher(index, encoder, metric)
