"""Top-k selection over score matrices (larger is better)."""

from __future__ import annotations

import numpy as np


def topk(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Best k of each row, sorted descending; missing entries are (-inf, -1)."""
    nq, c = scores.shape
    if c == 0:
        return np.full((nq, k), -np.inf, np.float32), np.full((nq, k), -1, np.int64)
    kk = min(k, c)
    part = (
        np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        if kk < c
        else np.tile(np.arange(c), (nq, 1))
    )
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    best = np.take_along_axis(part, order, axis=1)
    out_s = np.full((nq, k), -np.inf, np.float32)
    out_i = np.full((nq, k), -1, np.int64)
    out_s[:, :kk] = np.take_along_axis(scores, best, axis=1)
    out_i[:, :kk] = np.take_along_axis(ids, best, axis=1)
    out_i[~np.isfinite(out_s)] = -1
    return out_s, out_i
