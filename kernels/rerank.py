"""Exact re-rank of candidates with vectors gathered from a memory-mapped float16 matrix."""

from __future__ import annotations

import numpy as np

from kernels import dispatch, native
from kernels.topk import topk

_QUERY_CHUNK = 128


def gather_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """float32 copies of vectors[rows] (rows < 0 give zeros)."""
    safe = np.where(rows >= 0, rows, 0)
    out = np.asarray(vectors[safe.ravel()], dtype=np.float32)
    return out.reshape(*rows.shape, vectors.shape[1])


def exact_scores(xq: np.ndarray, cand: np.ndarray, metric: str) -> np.ndarray:
    """Scores (nq, c) of queries (nq, d) against their candidates (nq, c, d); larger is better."""
    ip = np.einsum("qcd,qd->qc", cand, xq, optimize=True)
    if metric == "ip":
        return ip
    return -((cand * cand).sum(-1) - 2 * ip + (xq * xq).sum(-1)[:, None])


def dense_scores(xq: np.ndarray, xb: np.ndarray, metric: str) -> np.ndarray:
    """Scores (nq, n) of queries against one shared set of vectors; larger is better."""
    ip = xq @ xb.T
    if metric == "ip":
        return ip
    return -((xb * xb).sum(-1)[None, :] - 2 * ip + (xq * xq).sum(-1)[:, None])


def rerank(
    xq: np.ndarray,
    cand_ids: np.ndarray,
    cand_rows: np.ndarray,
    vectors: np.ndarray,
    k: int,
    metric: str = "ip",
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of the candidates by exact score; candidates with row -1 are dropped.

    Returns (scores, ids); for l2 the scores are squared distances (smaller is better).
    Runs on the torch path when `kernels.dispatch` chooses it, else in the compiled kernel
    (`kernels.native`, float16 rows) when it was built, else in numpy.
    """
    if dispatch.backend() == "torch":
        from kernels import torch_rerank

        return torch_rerank.rerank(xq, cand_ids, cand_rows, vectors, k, metric, dispatch.device())
    if native.available() and vectors.dtype == np.float16 and vectors.flags.c_contiguous:
        return native.rerank_f16(xq, cand_ids, cand_rows, vectors, k, metric)
    nq = len(xq)
    out_s = np.empty((nq, k), np.float32)
    out_i = np.empty((nq, k), np.int64)
    for s in range(0, nq, _QUERY_CHUNK):
        sl = slice(s, s + _QUERY_CHUNK)
        rows = cand_rows[sl]
        scores = exact_scores(xq[sl], gather_rows(vectors, rows), metric)
        scores[rows < 0] = -np.inf
        out_s[sl], out_i[sl] = topk(scores.astype(np.float32), cand_ids[sl], k)
    if metric == "l2":
        out_s = -out_s
    return out_s, out_i
