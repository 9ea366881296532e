"""bench.stages on a small synthetic set: each stage computes what it is named for, FAISS's
and pith's versions of a stage agree, and every stage is timed in every round."""

import faiss
import numpy as np
import pytest

from bench.datasets.synthetic import synthetic
from bench.harness import Context, K
from bench.single import context
from bench.stages import FAISS_RERANK, flagship_index, report, run, stages
from kernels import native

pytestmark = pytest.mark.skipif(not native.available(), reason="kernels._native not built")


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Context:
    ds = synthetic(n=6000, nq=200, dim=64, seed=4)
    return context(ds, 200, 0, tmp_path_factory.mktemp("stages"))


def test_faiss_and_pith_stages_agree(ctx: Context) -> None:
    index = flagship_index(ctx)
    xq = np.ascontiguousarray(index.encoder.query_view(ctx.xq), dtype=np.float32)
    fns = dict(stages(index, xq))
    names = list(fns)
    _, faiss_lists = fns[names[0]](xq)
    _, pith_lists = fns[names[1]](xq)
    assert (np.sort(faiss_lists, 1) == np.sort(pith_lists, 1)).all()
    scanned = fns[names[2]](xq)
    _, base_ids = fns[names[3]](xq)
    assert (scanned == base_ids).all()  # the same scan once the lists are chosen
    _, refined = fns[names[4]](xq)
    _, reranked = fns[names[5]](xq)
    assert (refined == reranked).mean() > 0.99  # float16 ties may swap
    assert (fns[names[6]](xq).ids == reranked).mean() > 0.99
    assert refined.shape == (len(xq), K)


def test_every_stage_is_timed_in_every_round(ctx: Context) -> None:
    us = run(ctx, rounds=2)
    assert len(us) == 8 and FAISS_RERANK in us
    assert all(len(v) == 2 for v in us.values())
    assert all(min(v) > 0 for name, v in us.items() if name != FAISS_RERANK)
    assert faiss.omp_get_max_threads() > 0
    text = report(us, 200, 2)
    assert "coarse: pith kernels.coarse" in text and "µs per query" in text
