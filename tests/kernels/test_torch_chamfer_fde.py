"""Torch Chamfer re-rank and FDE encoding (torch's CPU backend) against the numpy path and a
float64 oracle; PITH_KERNELS routing of the public kernels."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kernel_helpers import assert_topk_matches, well_conditioned

from core.errors import InvalidSpec
from kernels import chamfer, dispatch, fde, torch_chamfer, torch_fde
from kernels.fde import FdeMatrices

CPU = torch.device("cpu")


def candidates(seed: int, nq: int = 3, c: int = 40, dim: int = 24):
    """A float16 token store of 300 clouds (1-20 tokens), queries and their candidate lists;
    some candidates are unknown (length 0)."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 21, 300)
    offsets = np.r_[0, np.cumsum(lengths)]
    store = rng.standard_normal((offsets[-1], dim)).astype(np.float16)
    q_offsets = np.r_[0, np.cumsum(rng.integers(1, 9, nq))]
    q_tokens = rng.standard_normal((q_offsets[-1], dim)).astype(np.float32)
    docs = np.stack([rng.choice(300, c, replace=False) for _ in range(nq)])
    cand_lengths = lengths[docs]
    cand_lengths[rng.random(docs.shape) < 0.1] = 0
    return q_tokens, q_offsets, docs, offsets[docs], cand_lengths, store


def chamfer_oracle(q_tokens, q_offsets, starts, lengths, store) -> np.ndarray:
    nq, c = starts.shape
    out = np.full((nq, c), -np.inf)
    for i in range(nq):
        query = q_tokens[q_offsets[i] : q_offsets[i + 1]].astype(np.float64)
        for j in range(c):
            if lengths[i, j]:
                cloud = store[starts[i, j] : starts[i, j] + lengths[i, j]].astype(np.float64)
                out[i, j] = (query @ cloud.T).max(axis=1).sum()
    return out


@pytest.mark.parametrize("on_device", [False, True])
def test_torch_chamfer_rerank_matches_oracle_and_cpu_path(on_device: bool) -> None:
    q_tokens, q_offsets, docs, starts, lengths, store = candidates(seed=1)
    tokens = torch.from_numpy(store) if on_device else store
    k = 45  # above the known candidates of some queries: their tail is (-inf, -1)
    got = torch_chamfer.chamfer_rerank(q_tokens, q_offsets, docs, starts, lengths, tokens, k, CPU)
    oracle = chamfer_oracle(q_tokens, q_offsets, starts, lengths, store)
    for i in range(len(docs)):
        known = lengths[i] > 0
        row = slice(i, i + 1)
        assert_topk_matches(oracle[row][:, known], got[0][row], got[1][row], k, docs[i][known])
    cpu = chamfer.chamfer_rerank(q_tokens, q_offsets, docs, starts, lengths, store, k)
    np.testing.assert_allclose(got[0], cpu[0], rtol=1e-5, atol=1e-4)


def test_torch_chamfer_with_no_known_candidates() -> None:
    q_tokens, q_offsets, docs, starts, lengths, store = candidates(seed=2)
    zero = np.zeros_like(lengths)
    scores, ids = torch_chamfer.chamfer_rerank(
        q_tokens, q_offsets, docs, starts, zero, store[:0], 5, CPU
    )
    assert (ids == -1).all() and np.isneginf(scores).all()


def fde_case(k_sim: int, identity: bool, seed: int):
    rng = np.random.default_rng(seed)
    dim, r, d_proj = 16, 4, 8
    simhash = rng.standard_normal((dim, r * k_sim)).astype(np.float32)
    proj = None if identity else rng.choice([-1.0, 1.0], (dim, r * d_proj)).astype(np.float32)
    lengths = rng.integers(1, 10, 120)
    offsets = np.r_[0, np.cumsum(lengths)]
    x = rng.standard_normal((offsets[-1], dim)).astype(np.float32)
    return well_conditioned(x, simhash, rng), offsets, FdeMatrices(simhash, proj, r, k_sim)


@pytest.mark.parametrize(("k_sim", "identity"), [(3, False), (4, True), (0, False), (6, False)])
@pytest.mark.parametrize("is_query", [True, False])
def test_torch_fde_matches_numpy(k_sim: int, identity: bool, is_query: bool) -> None:
    x, offsets, mats = fde_case(k_sim, identity, seed=k_sim)
    want = fde._fde_chunk(x.astype(np.float64), offsets, mats, is_query, fill_empty=True)
    got = torch_fde.fde_batch(x, offsets, mats, is_query, True, CPU)
    assert got.shape == (len(offsets) - 1, mats.fde_dim)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    if not is_query and k_sim >= 3:  # the fill ran: few empty partitions are left at zero
        unfilled = torch_fde.fde_batch(x, offsets, mats, False, False, CPU)
        assert (np.abs(got - unfilled).max(axis=1) > 0).mean() > 0.5


def test_torch_fde_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    x, offsets, mats = fde_case(3, False, seed=9)
    whole = torch_fde.fde_batch(x, offsets, mats, False, True, CPU)
    monkeypatch.setattr(fde, "_CHUNK_ELEMENTS", 64)  # one cloud per chunk
    np.testing.assert_allclose(torch_fde.fde_batch(x, offsets, mats, False, True, CPU), whole)


def test_backend_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dispatch.ENV_VAR, raising=False)
    assert dispatch.backend() == ("torch" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv(dispatch.ENV_VAR, "Torch")
    assert dispatch.backend() == "torch"
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    assert dispatch.backend() == "cpu"
    monkeypatch.setenv(dispatch.ENV_VAR, "gpu")
    with pytest.raises(InvalidSpec, match="PITH_KERNELS"):
        dispatch.backend()


@pytest.mark.parametrize("choice", ["torch", "cpu"])
def test_public_kernels_route_through_dispatch(
    monkeypatch: pytest.MonkeyPatch, choice: str
) -> None:
    monkeypatch.setenv(dispatch.ENV_VAR, choice)
    calls: list[str] = []
    real_rerank, real_fde = torch_chamfer.chamfer_rerank, torch_fde.fde_batch
    monkeypatch.setattr(
        torch_chamfer, "chamfer_rerank", lambda *a: calls.append("chamfer") or real_rerank(*a)
    )
    monkeypatch.setattr(torch_fde, "fde_batch", lambda *a: calls.append("fde") or real_fde(*a))
    q_tokens, q_offsets, docs, starts, lengths, store = candidates(seed=3)
    got = chamfer.chamfer_rerank(q_tokens, q_offsets, docs, starts, lengths, store, 10)
    x, offsets, mats = fde_case(3, False, seed=4)
    encoded = fde.fde_batch(x, offsets, mats, False, True)
    assert calls == (["chamfer", "fde"] if choice == "torch" else [])
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu" if choice == "torch" else "torch")
    other = chamfer.chamfer_rerank(q_tokens, q_offsets, docs, starts, lengths, store, 10)
    np.testing.assert_allclose(got[0], other[0], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(encoded, fde.fde_batch(x, offsets, mats, False, True), atol=1e-5)


def test_popcount_without_numpy_2(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.arange(1 << 10, dtype=np.int64)
    want = np.array([bin(int(v)).count("1") for v in values])
    np.testing.assert_array_equal(fde.popcount(values), want)
    monkeypatch.delattr(np, "bitwise_count", raising=False)  # numpy 1.26 has none
    np.testing.assert_array_equal(fde.popcount(values), want)
