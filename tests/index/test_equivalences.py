"""Equivalences between index kinds and with exact search."""

import numpy as np
from oracles import exact_topk

from encoders import PQSpec, build_encoder
from index import FlatSpec, IVFSpec, RerankSpec, SearchParams, index_for
from index.ivf import coarse_centroids


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
