"""Quality metrics: recall@k against exact search, nDCG@k against qrels, tie-aware."""

from __future__ import annotations

import numpy as np


def recall_at_k(found: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """Mean fraction of the exact top-k ids (truth[:, :k]) present in found[:, :k]."""
    hits = 0
    for f, t in zip(found[:, :k], truth[:, :k], strict=True):
        hits += len(np.intersect1d(f[f >= 0], t[t >= 0]))
    return hits / (len(truth) * k)


def recall_within(found: np.ndarray, truth: np.ndarray, k: int, depth: int) -> float:
    """Mean fraction of the exact top-k present anywhere in the first `depth` found ids."""
    hits = 0
    for f, t in zip(found[:, :depth], truth[:, :k], strict=True):
        hits += len(np.intersect1d(f[f >= 0], t[t >= 0]))
    return hits / (len(truth) * k)


def ndcg_at_k(found: np.ndarray, qrels: np.ndarray, k: int = 10) -> float:
    """nDCG@k with one relevant document per query (qrels[i]); ideal DCG is 1."""
    gains = np.zeros(len(found))
    for i, (f, rel) in enumerate(zip(found[:, :k], qrels, strict=True)):
        pos = np.flatnonzero(f == rel)
        if len(pos):
            gains[i] = 1.0 / np.log2(pos[0] + 2)
    return float(gains.mean())
