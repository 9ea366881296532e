"""Shared seeded fixtures: synthetic clustered data with an exact oracle."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

faiss.omp_set_num_threads(1)


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


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    """(xb, xq): 4,000 base and 100 query vectors, 32-d."""
    return clustered(4000, 32, seed=1), clustered(100, 32, seed=2)
