"""The coarse stage of an IVF search: each query's nprobe nearest lists, by one matrix product.

FAISS's flat quantizer keeps a heap of nprobe per query while it scans the centroids; with a
few hundred centroids that heap costs more than the product itself. A partial sort of the
product's rows (numpy) picks the same lists in about a third of the time (`bench.stages`).
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
