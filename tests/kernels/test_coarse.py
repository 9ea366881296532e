"""The coarse stage in one matrix product (kernels.coarse) against FAISS's flat quantizer."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from kernels.coarse import nearest_lists


@pytest.mark.parametrize("metric", ["ip", "l2"])
@pytest.mark.parametrize("nprobe", [1, 7, 64])
def test_nearest_lists_pick_faiss_lists_with_faiss_distances(metric: str, nprobe: int) -> None:
    rng = np.random.default_rng(11)
    centroids = rng.standard_normal((64, 24)).astype(np.float32)
    xq = rng.standard_normal((40, 24)).astype(np.float32)
    quantizer = faiss.IndexFlatIP(24) if metric == "ip" else faiss.IndexFlatL2(24)
    quantizer.add(centroids)
    want_d, want_i = quantizer.search(xq, nprobe)
    sq = np.einsum("ij,ij->i", centroids, centroids)
    dist, lists = nearest_lists(xq, centroids, sq, nprobe, metric)
    assert dist.shape == lists.shape == (40, nprobe)
    assert dist.flags.c_contiguous and lists.flags.c_contiguous
    assert dist.dtype == np.float32 and lists.dtype == np.int64
    for q in range(40):
        assert set(lists[q].tolist()) == set(want_i[q].tolist())
        order = np.argsort(lists[q])
        np.testing.assert_allclose(
            dist[q][order], want_d[q][np.argsort(want_i[q])], rtol=1e-4, atol=1e-4
        )
