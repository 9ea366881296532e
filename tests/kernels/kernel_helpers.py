"""Tie-aware comparison of top-k answers against full reference scores."""

from __future__ import annotations

import numpy as np


def assert_topk_matches(
    ref: np.ndarray,
    scores: np.ndarray,
    ids: np.ndarray,
    k: int,
    labels: np.ndarray | None = None,
    rtol: float = 1e-5,
) -> None:
    """ref (nq, n) exact scores (larger is better) by position; ids are labels[position].

    Every returned id is distinct and valid, its score is its reference score, and it is at
    least as good as the reference k-th best (so ties at the boundary may swap); rows with fewer
    than k candidates end in (-inf, -1).
    """
    nq, n = ref.shape
    labels = np.arange(n) if labels is None else labels
    position = {int(label): i for i, label in enumerate(labels)}
    kk = min(k, n)
    assert scores.shape == ids.shape == (nq, k)
    scale = np.abs(ref).max() + 1e-12
    for q in range(nq):
        row = ids[q, :kk]
        assert len(set(row.tolist())) == kk, f"query {q}: duplicate or missing ids {row}"
        pos = np.array([position[int(i)] for i in row])
        truth = ref[q, pos]
        np.testing.assert_allclose(scores[q, :kk], truth, rtol=0, atol=rtol * scale)
        kth = np.sort(ref[q])[::-1][kk - 1]
        assert (truth >= kth - rtol * scale).all(), f"query {q}: an id below the k-th score"
        assert (np.diff(scores[q, :kk]) <= rtol * scale).all(), "scores not sorted descending"
        assert (ids[q, kk:] == -1).all() and np.isneginf(scores[q, kk:]).all()


def well_conditioned(x: np.ndarray, planes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Resample rows of x until no projection on `planes` is near zero (relative 1e-3), so
    float32 implementations that sum in different orders agree on every sign."""
    x = x.copy()
    norms = np.linalg.norm(planes, axis=0)
    while True:
        z = np.abs(x.astype(np.float64) @ planes) / (np.linalg.norm(x, axis=1)[:, None] * norms)
        bad = np.flatnonzero(z.min(axis=1) < 1e-3) if z.size else np.zeros(0, np.int64)
        if not len(bad):
            return x
        x[bad] = rng.standard_normal((len(bad), x.shape[1])).astype(x.dtype)
