"""Seeded synthetic data and exact-search oracles shared by the tests (imported as `oracles`:
a module named conftest would clash with the per-folder conftest files)."""

from __future__ import annotations

import faiss
import numpy as np


def clustered(n: int, dim: int, seed: int, clusters: int = 32) -> np.ndarray:
    """Unit vectors drawn around random centres (structure that quantizers can exploit)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(0, clusters, n)] + 0.6 * rng.standard_normal((n, dim))
    x = x.astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_topk(xq: np.ndarray, xb: np.ndarray, k: int, ids: np.ndarray | None = None):
    """Exact inner-product top-k (scores, ids)."""
    index = faiss.IndexFlatIP(xb.shape[1])
    index.add(xb)
    scores, pos = index.search(xq, k)
    return scores, (pos if ids is None else ids[pos])


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)) / truth.size
