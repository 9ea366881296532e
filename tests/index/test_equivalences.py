"""Equivalences between index kinds and with exact search."""

import numpy as np
import pytest
from oracles import exact_topk

from encoders import PQSpec, build_encoder
from index import FlatSpec, IVFSpec, RerankSpec, SearchParams, index_for
from index.ivf import coarse_centroids
from kernels import native


def test_ivf_with_nprobe_equal_nlist_equals_exhaustive(data):
    xb, xq = data
    ivf = index_for(
        build_encoder(PQSpec(m=8, iterations=4, opq_iterations=1), 32),
        IVFSpec(nlist=8, by_residual=False),
    )
    ivf.train(xb)
    flat = index_for(ivf.encoder, FlatSpec())  # the very same codebooks
    for index in (ivf, flat):
        index.add(np.arange(len(xb)), xb)
    a = ivf.search(xq, 10, SearchParams(nprobe=8))
    b = flat.search(xq, 10)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)
    same = (a.ids == b.ids) | np.isclose(a.scores, b.scores)  # ties may swap
    assert same.all()


def test_ivf_float_with_all_lists_is_exact(data):
    xb, xq = data
    ivf = index_for(build_encoder({"kind": "float32"}, 32), IVFSpec(nlist=8))
    ivf.train(xb)
    ivf.add(np.arange(len(xb)), xb)
    res = ivf.search(xq, 10, SearchParams(nprobe=8))
    scores, _ = exact_topk(xq, xb, 10)
    np.testing.assert_allclose(res.scores, scores, rtol=1e-5, atol=1e-6)


def test_rerank_with_every_candidate_is_exact(data, tmp_path):
    xb, xq = data
    spec = FlatSpec(rerank=RerankSpec(enabled=True, oversample=len(xb) / 10))
    index = index_for(build_encoder(PQSpec(m=4, iterations=3, opq=False), 32), spec, tmp_path)
    index.train(xb)
    index.add(np.arange(len(xb)), xb)
    res = index.search(xq, 10)
    scores, ids = exact_topk(xq, xb, 10)
    np.testing.assert_allclose(res.scores, scores, rtol=2e-3, atol=2e-3)  # float16 store
    assert (res.ids == ids).mean() > 0.97


def test_ivf_inner_product_centroids_are_unit_and_l2_centroids_are_means(data):
    xb, _ = data
    xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
    ip = coarse_centroids(xb, IVFSpec(nlist=8, metric="ip"))
    l2 = coarse_centroids(xb, IVFSpec(nlist=8, metric="l2"))
    np.testing.assert_allclose(np.linalg.norm(ip, axis=1), 1.0, rtol=1e-5)
    assert np.linalg.norm(l2, axis=1).max() < 0.999  # means of unit vectors are shorter


def _ivf(encoder: dict, metric: str, xb: np.ndarray, **index: object):
    ivf = index_for(build_encoder(encoder, 32), IVFSpec(nlist=16, metric=metric, **index))
    ivf.train(xb)
    ivf.add(np.arange(len(xb)) * 7 + 3, xb)
    return ivf


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize(
    "encoder, by_residual",
    [
        ({"kind": "float32"}, False),
        ({"kind": "pq", "m": 16, "nbits": 4, "iterations": 4, "opq": False}, False),
        ({"kind": "pq", "m": 8, "iterations": 4, "opq_iterations": 1}, True),
    ],
)
def test_ivf_coarse_stage_chooses_the_lists_faiss_would(data, metric, encoder, by_residual):
    """pith's coarse stage (kernels.coarse + search_preassigned) gives FAISS's own answers,
    filters included (fast-scan, residual PQ and flat lists)."""
    xb, xq = data
    ivf = _ivf(encoder, metric, xb, by_residual=by_residual)
    allowed = np.arange(len(xb))[::3] * 7 + 3
    for nprobe, filt in ((3, None), (5, allowed), (16, None)):
        got = ivf.search(xq, 10, SearchParams(nprobe=nprobe), allowed=filt)
        sp = ivf._base_params(SearchParams(nprobe=nprobe), filt)
        want_d, want_i = ivf.faiss.search(ivf.encoder.query_view(xq), 10, params=sp)
        np.testing.assert_array_equal(got.ids, want_i)
        np.testing.assert_allclose(got.scores, want_d, rtol=1e-5, atol=1e-5)
        few = ivf.search(xq[:3], 10, SearchParams(nprobe=nprobe), allowed=filt)  # FAISS's own
        np.testing.assert_array_equal(few.ids, want_i[:3])
        if filt is not None:
            assert np.isin(got.ids, filt).all()


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_rerank_gives_the_same_answers_with_and_without_the_compiled_kernel(
    data, metric, tmp_path, monkeypatch
):
    """With the extension, the re-rank of a batch runs in kernels.native; without it, or for
    a few queries, in FAISS's IndexRefine: the same candidates, scores and answers."""
    xb, xq = data
    spec = IVFSpec(nlist=16, metric=metric, rerank=RerankSpec(enabled=True, oversample=4))
    index = index_for(build_encoder(PQSpec(m=8, iterations=3, opq=False), 32), spec, tmp_path)
    index.train(xb)
    index.add(np.arange(len(xb)) * 5 + 1, xb)
    fast = index.search(xq, 10, SearchParams(nprobe=4))
    few = index.search(xq[:3], 10, SearchParams(nprobe=4))  # under FEW_QUERIES: IndexRefine
    monkeypatch.setattr(native, "available", lambda: False)
    refine = index.search(xq, 10, SearchParams(nprobe=4))
    np.testing.assert_array_equal(few.ids, refine.ids[:3])
    same = (fast.ids == refine.ids) | np.isclose(fast.scores, refine.scores, rtol=1e-5)
    assert same.all()
    np.testing.assert_allclose(fast.scores, refine.scores, rtol=1e-4, atol=1e-4)
