"""Codebook training for product quantization: k-means per sub-space, with RepCONC's constrained
clustering as an option (centroid assignment solved as balanced optimal transport by Sinkhorn,
equal mass per centroid), and OPQ rotation learning by alternating Procrustes steps."""

from __future__ import annotations

import numpy as np

_CHUNK = 16_384


def sq_distances(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Squared L2 distances (n, k) between rows of x (n, d) and c (k, d)."""
    d = (x * x).sum(1, keepdims=True) - 2.0 * (x @ c.T) + (c * c).sum(1)[None, :]
    return np.maximum(d, 0.0, out=d)


def nearest(x: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Index of the nearest centroid of each row, computed in chunks."""
    out = np.empty(len(x), dtype=np.int64)
    for s in range(0, len(x), _CHUNK):
        out[s : s + _CHUNK] = sq_distances(x[s : s + _CHUNK], c).argmin(1)
    return out


def sinkhorn_assign(dist: np.ndarray, epsilon: float, iterations: int) -> np.ndarray:
    """Balanced hard assignment: argmax of the entropic transport plan with uniform marginals.

    Rows (points) carry mass 1/n, columns (centroids) mass 1/k; epsilon is relative to the
    mean distance, so the same setting works whatever the scale of the data.
    """
    n, k = dist.shape
    scale = float(dist.mean()) * epsilon + 1e-12
    kernel = np.exp(-(dist - dist.min(1, keepdims=True)) / scale)  # every row keeps a 1
    u = np.full(n, 1.0 / n)
    v = np.ones(k)
    for _ in range(iterations):
        v = (1.0 / k) / np.maximum(kernel.T @ u, 1e-300)
        u = (1.0 / n) / np.maximum(kernel @ v, 1e-300)
    return (kernel * v[None, :]).argmax(1)


def update_centroids(x: np.ndarray, assign: np.ndarray, c: np.ndarray, rng: np.random.Generator):
    """Means of the assigned points; an empty centroid is re-seeded on a random point."""
    k, d = c.shape
    sums = np.zeros((k, d), dtype=np.float64)
    np.add.at(sums, assign, x)
    counts = np.bincount(assign, minlength=k).astype(np.float64)
    out = (sums / np.maximum(counts, 1)[:, None]).astype(np.float32)
    empty = counts == 0
    if empty.any():
        out[empty] = x[rng.choice(len(x), size=int(empty.sum()), replace=False)]
    return out


def kmeans(
    x: np.ndarray,
    k: int,
    iterations: int,
    rng: np.random.Generator,
    balanced: bool = False,
    epsilon: float = 0.05,
    sinkhorn_iterations: int = 10,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """k centroids of x; balanced=True assigns by Sinkhorn (equal mass per centroid)."""
    c = init.copy() if init is not None else x[rng.choice(len(x), size=k, replace=False)].copy()
    for _ in range(iterations):
        if balanced:
            assign = sinkhorn_assign(sq_distances(x, c), epsilon, sinkhorn_iterations)
        else:
            assign = nearest(x, c)
        c = update_centroids(x, assign, c, rng)
    return c


def train_codebooks(
    x: np.ndarray,
    m: int,
    k: int,
    iterations: int,
    rng: np.random.Generator,
    balanced: bool,
    epsilon: float,
    sinkhorn_iterations: int,
    init: np.ndarray | None = None,
) -> np.ndarray:
    """Codebooks (m, k, d/m), one k-means per sub-space of x (n, d)."""
    n, d = x.shape
    dsub = d // m
    books = np.empty((m, k, dsub), dtype=np.float32)
    for j in range(m):
        sub = np.ascontiguousarray(x[:, j * dsub : (j + 1) * dsub])
        books[j] = kmeans(
            sub,
            k,
            iterations,
            rng,
            balanced=balanced,
            epsilon=epsilon,
            sinkhorn_iterations=sinkhorn_iterations,
            init=None if init is None else init[j],
        )
    return books


def reconstruct(x: np.ndarray, books: np.ndarray) -> np.ndarray:
    """Each sub-vector replaced by its nearest centroid."""
    m, _, dsub = books.shape
    out = np.empty_like(x)
    for j in range(m):
        sl = slice(j * dsub, (j + 1) * dsub)
        out[:, sl] = books[j][nearest(np.ascontiguousarray(x[:, sl]), books[j])]
    return out


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The orthogonal R minimising ||x R - y||: U V^T from the SVD of x^T y."""
    u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ y.astype(np.float64))
    return (u @ vt).astype(np.float32)


def train_opq(
    x: np.ndarray, m: int, k: int, outer: int, rng: np.random.Generator
) -> np.ndarray:
    """An orthogonal rotation (d, d) learned by alternating PQ training and Procrustes."""
    d = x.shape[1]
    q, _ = np.linalg.qr(rng.standard_normal((d, d)))
    rot = q.astype(np.float32)
    books = None
    for _ in range(outer):
        z = x @ rot
        books = train_codebooks(z, m, k, 4, rng, False, 0.0, 1, init=books)
        rot = procrustes(x, reconstruct(z, books))
    return rot
