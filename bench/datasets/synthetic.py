"""A seeded synthetic single-vector set for tests: clustered unit vectors, noisy-copy queries."""

from __future__ import annotations

import numpy as np

from bench.datasets.base import MultiVectorDataset, VectorDataset


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def synthetic(n: int = 20_000, nq: int = 1_000, dim: int = 64, seed: int = 0) -> VectorDataset:
    """Documents around 64 random centres; each query is a perturbed document (its qrel)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim))
    xb = _unit(centres[rng.integers(0, 64, n)] + 0.7 * rng.standard_normal((n, dim)))
    qrels = rng.choice(n, size=nq, replace=False).astype(np.int64)
    xq = _unit(xb[qrels] + 0.35 * rng.standard_normal((nq, dim)) / np.sqrt(dim) * 4)
    return VectorDataset(name="synthetic", xb=xb, xq=xq, qrels=qrels)


def synthetic_tokens(
    n: int = 2_000, nq: int = 200, dim: int = 32, tokens: int = 12, seed: int = 0
) -> MultiVectorDataset:
    """Multi-vector documents of 4..tokens unit vectors; queries are noisy token subsets."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(4, tokens + 1, n)
    docs = [_unit(rng.standard_normal((t, dim))) for t in lengths]
    qrels = rng.choice(n, size=nq, replace=False).astype(np.int64)
    queries = []
    for d in qrels:
        pick = docs[d][rng.choice(len(docs[d]), size=min(4, len(docs[d])), replace=False)]
        queries.append(_unit(pick + 0.3 * rng.standard_normal(pick.shape)))
    doc_off = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    q_off = np.concatenate([[0], np.cumsum([len(q) for q in queries])]).astype(np.int64)
    return MultiVectorDataset(
        name="synthetic-tokens",
        doc_vectors=np.concatenate(docs).astype(np.float16),
        doc_offsets=doc_off,
        query_vectors=np.concatenate(queries),
        query_offsets=q_off,
        qrels=qrels,
    )
