"""Torch LUT scans and float16 search (torch's CPU backend) against FAISS and numpy oracles;
the Triton kernel in interpreter mode when Triton is installed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import faiss
import numpy as np
import pytest
import torch
from kernel_helpers import assert_topk_matches

from kernels import torch_scan

D, M = 32, 16
REPO = Path(__file__).resolve().parents[2]


def trained_pq(nbits: int, seed: int) -> tuple[faiss.ProductQuantizer, np.ndarray, np.ndarray]:
    """A FAISS PQ with random codebooks, its (nearest-centroid) codes for 3,000 vectors and the
    codebooks (m, 2**nbits, dsub)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((3000, D)).astype(np.float32)
    books = rng.standard_normal((M, 1 << nbits, D // M)).astype(np.float32)
    pq = faiss.ProductQuantizer(D, M, nbits)
    faiss.copy_array_to_vector(books.ravel(), pq.centroids)
    pq.sync_transposed_centroids()
    return pq, pq.compute_codes(x), books


@pytest.mark.parametrize("nbits", [8, 4, 6])
def test_unpack_keys_matches_faiss_decode(nbits: int) -> None:
    pq, codes, books = trained_pq(nbits, seed=nbits)
    keys = torch_scan.unpack_keys(torch.from_numpy(codes), M, nbits).numpy()
    assert keys.shape == (len(codes), M) and keys.max() < (1 << nbits)
    rebuilt = books[np.arange(M)[None, :], keys].reshape(len(codes), D)
    np.testing.assert_array_equal(rebuilt, pq.decode(codes))


@pytest.mark.parametrize("nbits", [8, 4])
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_adc_scan_matches_faiss_index_pq(nbits: int, metric: str) -> None:
    pq, codes, books = trained_pq(nbits, seed=10 + nbits)
    xq = np.random.default_rng(3).standard_normal((6, D)).astype(np.float32)
    mt = faiss.METRIC_INNER_PRODUCT if metric == "ip" else faiss.METRIC_L2
    index = faiss.IndexPQ(D, M, nbits, mt)
    index.pq = pq
    index.is_trained = True
    index.add_sa_codes(codes)
    dist, pos = index.search(xq, 20)
    luts = torch_scan.adc_tables(torch.from_numpy(xq), torch.from_numpy(books), metric)
    scores, ids = torch_scan.lut_topk(luts, torch.from_numpy(codes), nbits, 20)
    sign = 1.0 if metric == "ip" else -1.0
    decoded = pq.decode(codes).astype(np.float64)
    if metric == "ip":
        ref = xq.astype(np.float64) @ decoded.T
    else:
        ref = -((xq[:, None, :].astype(np.float64) - decoded[None]) ** 2).sum(-1)
    assert_topk_matches(ref, scores.numpy(), ids.numpy(), 20)
    np.testing.assert_allclose(sign * scores.numpy(), dist, rtol=1e-5, atol=1e-4)
    assert (np.sort(ids.numpy(), 1) == np.sort(pos, 1)).mean() > 0.95  # ties aside, same ids


def test_scan_with_labels_filter_chunks_and_short_lists(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch_scan, "_SCORES_PER_CHUNK", 700)  # 256 codes per chunk: 12 chunks
    monkeypatch.setattr(torch_scan, "_MIN_CHUNK", 256)
    _, codes, books = trained_pq(8, seed=5)
    rng = np.random.default_rng(6)
    xq = rng.standard_normal((3, D)).astype(np.float32)
    labels = rng.permutation(10**6)[: len(codes)].astype(np.int64)
    allowed = rng.random(len(codes)) < 0.01  # about 30 codes pass
    luts = torch_scan.adc_tables(torch.from_numpy(xq), torch.from_numpy(books))
    k = 50  # more than the allowed codes: the tail is (-inf, -1)
    scores, ids = torch_scan.lut_topk(
        luts, torch.from_numpy(codes), 8, k, torch.from_numpy(labels), torch.from_numpy(allowed)
    )
    decoded = books[np.arange(M)[None, :], codes.astype(np.int64)].reshape(len(codes), D)
    ref = (xq @ decoded.T)[:, allowed]
    assert_topk_matches(ref, scores.numpy(), ids.numpy(), k, labels=labels[allowed])


def test_sdc_tables_are_rows_of_the_symmetric_table() -> None:
    rng = np.random.default_rng(7)
    book = rng.standard_normal((256, 4))
    table = torch.from_numpy((book @ book.T).astype(np.float32))
    qkeys = torch.from_numpy(rng.integers(0, 256, (2, M)))
    codes = rng.integers(0, 256, (500, M), dtype=np.uint8)
    luts = torch_scan.sdc_tables(qkeys, table)
    assert luts.shape == (2, M, 256)
    scores, ids = torch_scan.lut_topk(luts, torch.from_numpy(codes), 8, 10)
    q = book[qkeys.numpy()].reshape(2, -1)
    ref = q @ book[codes.astype(np.int64)].reshape(500, -1).T
    assert_topk_matches(ref, scores.numpy(), ids.numpy(), 10)


def test_fp16_ip_topk_matches_exact_scores_of_float16_rows() -> None:
    rng = np.random.default_rng(8)
    xb = rng.standard_normal((5000, 48)).astype(np.float16)
    xq = rng.standard_normal((4, 48)).astype(np.float32)
    labels = np.arange(5000, dtype=np.int64) * 3 + 1
    scores, ids = torch_scan.fp16_ip_topk(
        torch.from_numpy(xq), torch.from_numpy(xb), 15, ids=torch.from_numpy(labels)
    )
    ref = xq.astype(np.float64) @ xb.astype(np.float64).T
    assert_topk_matches(ref, scores.numpy(), ids.numpy(), 15, labels=labels)
    index = faiss.IndexScalarQuantizer(
        48, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
    )
    index.add_sa_codes(xb.view(np.uint8))
    dist, _ = index.search(xq, 15)
    np.testing.assert_allclose(scores.numpy(), dist, rtol=1e-5, atol=1e-4)


def test_fp16_search_with_fewer_rows_than_k_pads() -> None:
    xb = torch.ones((3, 4), dtype=torch.float16)
    scores, ids = torch_scan.fp16_ip_topk(torch.ones((1, 4)), xb, 5)
    assert ids[0, :3].sort().values.tolist() == [0, 1, 2]
    assert ids[0, 3:].tolist() == [-1, -1] and torch.isneginf(scores[0, 3:]).all()
    assert torch.allclose(scores[0, :3], torch.full((3,), 4.0))


TRITON_SCRIPT = """
import numpy as np, torch
from kernels import torch_scan, triton_scan
assert triton_scan.available(torch.device("cpu"))
rng = np.random.default_rng(0)
for nbits, m in ((8, 24), (4, 16), (4, 7)):
    codes = torch.from_numpy(rng.integers(0, 256, (300, (m * nbits + 7) // 8), dtype=np.uint8))
    luts = torch.from_numpy(rng.standard_normal((3, m, 1 << nbits)).astype(np.float32))
    fast = triton_scan.lut_scores(luts, codes, nbits)
    slow = torch_scan.lut_scores(luts, torch_scan.unpack_keys(codes, m, nbits))
    assert torch.allclose(fast, slow, atol=1e-5), (nbits, m, (fast - slow).abs().max())
    s1, i1 = torch_scan.lut_topk(luts, codes, nbits, 5, use_triton=True)
    s2, i2 = torch_scan.lut_topk(luts, codes, nbits, 5, use_triton=False)
    assert torch.allclose(s1, s2, atol=1e-5) and (i1 == i2).all()
print("triton ok")
"""


def test_triton_kernel_in_interpreter_mode() -> None:
    pytest.importorskip("triton")
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    done = subprocess.run(
        [sys.executable, "-c", TRITON_SCRIPT], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "triton ok" in done.stdout
