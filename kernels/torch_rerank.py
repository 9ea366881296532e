"""Exact re-rank in torch: candidates' rows gathered on the host (from the memory-mapped float16
file, as `kernels.rerank` does), copied once per block of queries, scored on the device.

Same inputs and results as `kernels.rerank.rerank` (the CPU path), up to float rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels.dispatch import to_device, to_numpy
from kernels.topk import topk

_QUERY_CHUNK = 128


def exact_scores(xq: torch.Tensor, cand: torch.Tensor, metric: str) -> torch.Tensor:
    """Scores (nq, c) of queries (nq, d) against their candidates (nq, c, d); larger is better."""
    ip = torch.einsum("qcd,qd->qc", cand, xq)
    if metric == "ip":
        return ip
    return -((cand * cand).sum(-1) - 2 * ip + (xq * xq).sum(-1)[:, None])


def rerank(
    xq: np.ndarray,
    cand_ids: np.ndarray,
    cand_rows: np.ndarray,
    vectors: np.ndarray,
    k: int,
    metric: str,
    dev: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of the candidates by exact score on `dev`; rows -1 are dropped.

    For l2 the scores are squared distances (smaller is better), as on the CPU path.
    """
    from kernels.rerank import gather_rows  # kernels.rerank routes here: imported late

    nq = len(xq)
    out_s = np.empty((nq, k), np.float32)
    out_i = np.empty((nq, k), np.int64)
    for s in range(0, nq, _QUERY_CHUNK):
        sl = slice(s, s + _QUERY_CHUNK)
        rows = cand_rows[sl]
        cand = to_device(gather_rows(vectors, rows), dev)
        q = to_device(np.asarray(xq[sl], dtype=np.float32), dev)
        scores = exact_scores(q, cand, metric)
        scores.masked_fill_(to_device(rows < 0, dev), -torch.inf)
        out_s[sl], out_i[sl] = topk(to_numpy(scores), cand_ids[sl], k)
    if metric == "l2":
        out_s = -out_s
    return out_s, out_i
