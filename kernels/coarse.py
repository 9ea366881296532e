"""The coarse stage of an IVF search: each query's nprobe nearest lists, by one matrix product.

FAISS's flat quantizer computes the same product, then pushes each query's scores through a
heap of nprobe. A partial sort of the product's rows (numpy) picks the same lists in under a
third of the time for a batch (wordnet-minilm, 256 lists, nprobe 80: 2.5 against 8.8 µs per
query, `python -m bench.stages`); for a few queries numpy's per-call cost makes it slower.
"""

from __future__ import annotations

import numpy as np


def nearest_lists(
    xq: np.ndarray, centroids: np.ndarray, sq_norms: np.ndarray, nprobe: int, metric: str
) -> tuple[np.ndarray, np.ndarray]:
    """(dist, lists), both (nq, nprobe) and C-contiguous: each query's nprobe best centroids in
    no particular order, with FAISS's coarse distances (inner products for "ip", squared L2
    distances for "l2"). `sq_norms` holds the centroids' squared norms (used for l2)."""
    ip = xq @ centroids.T
    key = -ip if metric == "ip" else sq_norms[None, :] - 2 * ip
    nlist = centroids.shape[0]
    if nprobe < nlist:
        lists = np.argpartition(key, nprobe - 1, axis=1)[:, :nprobe]
    else:
        lists = np.broadcast_to(np.arange(nlist), key.shape)
    picked = np.take_along_axis(key, lists, axis=1)
    dist = -picked if metric == "ip" else picked + np.einsum("ij,ij->i", xq, xq)[:, None]
    return (
        np.ascontiguousarray(dist, dtype=np.float32),
        np.ascontiguousarray(lists, dtype=np.int64),
    )
