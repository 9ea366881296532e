"""Codebook training for product quantization: k-means in every sub-space at once (torch,
batched over sub-spaces), with RepCONC's constrained clustering as an option — centroid
assignment solved as balanced optimal transport by Sinkhorn, equal mass per centroid — and
OPQ rotation learning by alternating PQ training and Procrustes steps."""

from __future__ import annotations

import faiss
import numpy as np
import torch

_GROUP_BYTES = 1 << 28  # distance matrices of at most 256 MB at a time


def sq_distances(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Squared L2 distances (g, n, k) between x (g, n, d) and c (g, k, d)."""
    d = torch.baddbmm((c * c).sum(-1).unsqueeze(1), x, c.transpose(1, 2), alpha=-2.0)
    d += (x * x).sum(-1, keepdim=True)
    return d.clamp_(min=0.0)


def sinkhorn_assign(
    dist: torch.Tensor, epsilon: float, iterations: int, v: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Balanced hard assignment (g, n): argmax of the entropic transport plan whose rows
    (points) carry mass 1/n and columns (centroids) mass 1/k. epsilon is relative to the
    mean distance, so the same setting works whatever the scale of the data.

    Returns the assignment and the column scaling v (g, k, 1); passing v back in on the next
    k-means iteration warm-starts Sinkhorn, so a few iterations per step suffice.
    """
    g, n, k = dist.shape
    scale = dist.mean(dim=(1, 2), keepdim=True) * epsilon + 1e-12
    kernel = torch.exp(-(dist - dist.amin(2, keepdim=True)) / scale)  # each row keeps a 1
    u = torch.full((g, 1, n), 1.0 / n)
    v = torch.ones((g, k, 1)) if v is None else v
    for _ in range(iterations):
        u = (1.0 / n) / torch.bmm(kernel, v).transpose(1, 2).clamp_(min=1e-30)
        v = (1.0 / k) / torch.bmm(u, kernel).transpose(1, 2).clamp_(min=1e-30)
    return (kernel * v.transpose(1, 2)).argmax(2), v


def _update(
    x: torch.Tensor, assign: torch.Tensor, c: torch.Tensor, rng: np.random.Generator
) -> torch.Tensor:
    """Means of the assigned points; an empty centroid is re-seeded on a random point."""
    g, n, d = x.shape
    k = c.shape[1]
    flat = (assign + torch.arange(g).unsqueeze(1) * k).reshape(-1)
    sums = torch.zeros(g * k, d, dtype=torch.float64).index_add_(0, flat, x.reshape(-1, d).double())
    counts = torch.bincount(flat, minlength=g * k).double().unsqueeze(1)
    out = (sums / counts.clamp(min=1)).float().reshape(g, k, d)
    empty = (counts.reshape(g, k) == 0).numpy()
    for j, col in zip(*np.nonzero(empty), strict=True):
        out[j, col] = x[j, int(rng.integers(n))]
    return out


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
    """Codebooks (m, k, d/m): k-means in each of the m sub-spaces of x (n, d)."""
    n, d = x.shape
    dsub = d // m
    xs = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).view(n, m, dsub)
    xs = xs.permute(1, 0, 2).contiguous()
    if init is None:
        c = xs[:, torch.from_numpy(rng.choice(n, size=k, replace=False))].clone()
    else:
        c = torch.from_numpy(np.ascontiguousarray(init, dtype=np.float32)).clone()
    group = max(1, _GROUP_BYTES // (n * k * 8))
    v = torch.ones((m, k, 1))  # Sinkhorn column scalings, carried across iterations
    for _ in range(iterations):
        for s in range(0, m, group):
            sl = slice(s, s + group)
            dist = sq_distances(xs[sl], c[sl])
            if balanced:
                assign, v[sl] = sinkhorn_assign(dist, epsilon, sinkhorn_iterations, v[sl])
            else:
                assign = dist.argmin(2)
            c[sl] = _update(xs[sl], assign, c[sl], rng)
    return c.numpy()


def procrustes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """The orthogonal R minimising ||x R - y||: U V^T from the SVD of x^T y."""
    u, _, vt = np.linalg.svd(x.T.astype(np.float64) @ y.astype(np.float64))
    return (u @ vt).astype(np.float32)


def train_opq(x: np.ndarray, m: int, outer: int, max_train: int) -> np.ndarray:
    """An orthogonal rotation (d, d), x -> x @ rot, learned by FAISS's OPQMatrix (alternating
    PQ training and Procrustes, Ge et al. 2013; seeded internally, deterministic)."""
    d = x.shape[1]
    opq = faiss.OPQMatrix(d, m)
    opq.niter = outer
    opq.max_train_points = max_train
    opq.train(np.ascontiguousarray(x, dtype=np.float32))
    a = faiss.vector_to_array(opq.A).reshape(d, d)  # y = A x for column vectors
    return np.ascontiguousarray(a.T, dtype=np.float32)
