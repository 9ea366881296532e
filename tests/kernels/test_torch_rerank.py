"""Torch exact re-rank (torch's CPU backend) against the numpy path and a float64 oracle."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_helpers import assert_topk_matches

from kernels import dispatch, rerank, torch_rerank


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_torch_rerank_matches_cpu_path_and_oracle(metric: str) -> None:
    rng = np.random.default_rng(4)
    vectors = rng.standard_normal((500, 24)).astype(np.float16)
    xq = rng.standard_normal((130, 24)).astype(np.float32)  # two query chunks
    rows = np.stack([rng.choice(500, 30, replace=False) for _ in range(130)])
    rows[:, -3:] = -1  # unknown candidates are dropped
    ids = rows * 10 + 7
    k = 29  # more than the 27 known candidates: the tail is (-inf, -1)
    got = torch_rerank.rerank(xq, ids, rows, vectors, k, metric, torch.device("cpu"))
    want = rerank.rerank(xq, ids, rows, vectors, k, metric)
    np.testing.assert_allclose(got[0][:, :27], want[0][:, :27], rtol=1e-5, atol=1e-4)
    sign = 1.0 if metric == "ip" else -1.0
    for i in range(0, 130, 43):
        cand = vectors[rows[i, :27]].astype(np.float64)
        q = xq[i].astype(np.float64)
        ref = cand @ q if metric == "ip" else -((cand - q) ** 2).sum(1)
        one = (sign * got[0][i : i + 1], got[1][i : i + 1])
        assert_topk_matches(ref[None], *one, k, labels=ids[i, :27], rtol=1e-5)


def test_rerank_routes_to_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []
    real = torch_rerank.rerank
    monkeypatch.setattr(torch_rerank, "rerank", lambda *a: calls.append(1) or real(*a))
    vectors = np.eye(4, dtype=np.float16)
    args = (np.eye(4, dtype=np.float32), np.arange(16).reshape(4, 4), np.tile(np.arange(4), (4, 1)))
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    want = rerank.rerank(*args, vectors, 1)
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    got = rerank.rerank(*args, vectors, 1)
    assert calls == [1]
    np.testing.assert_array_equal(got[1], want[1])
    assert got[1].ravel().tolist() == [0, 5, 10, 15]
