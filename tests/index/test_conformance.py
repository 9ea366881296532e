"""One conformance suite that every index kind x encoder runs."""

import numpy as np
import pytest
from oracles import exact_topk, recall

from core.errors import InvalidInput, NotTrained
from index import SearchParams, build_index, load_index, save_index

PQ = {"kind": "pq", "m": 8, "iterations": 5, "opq_iterations": 2, "max_train": 4000}
PQ4 = {**PQ, "nbits": 4, "m": 16}
CASES = [
    ({"kind": "float32"}, {"kind": "flat"}, 0.99),
    ({"kind": "float16"}, {"kind": "flat"}, 0.99),
    (PQ, {"kind": "flat"}, 0.45),
    (PQ4, {"kind": "flat"}, 0.4),
    ({"kind": "float32"}, {"kind": "ivf", "nlist": 16, "nprobe": 16}, 0.99),
    ({"kind": "float16"}, {"kind": "ivf", "nlist": 16, "nprobe": 8}, 0.9),
    (PQ, {"kind": "ivf", "nlist": 16, "nprobe": 8}, 0.45),
    (PQ4, {"kind": "ivf", "nlist": 16, "nprobe": 8}, 0.4),
    ({"kind": "float32"}, {"kind": "hnsw", "m": 16, "ef_construction": 80, "ef_search": 128}, 0.95),
    ({"kind": "float16"}, {"kind": "hnsw", "m": 16, "ef_construction": 80, "ef_search": 128}, 0.95),
    (PQ, {"kind": "flat", "rerank": {"enabled": True, "oversample": 8}}, 0.97),
    (PQ4, {"kind": "ivf", "nlist": 16, "nprobe": 16, "rerank": {"enabled": True}}, 0.95),
]
IDS_OFFSET = 2**40  # 64-bit ids, far from row numbers
_BUILT: dict[int, object] = {}


def case_id(case):
    enc, idx, _ = case
    return f"{idx['kind']}-{enc['kind']}{enc.get('nbits', '')}" + (
        "-rerank" if "rerank" in idx else ""
    )


@pytest.fixture(params=CASES, ids=[case_id(c) for c in CASES])
def built(request, data, tmp_path_factory):
    """(index, floor, ids, xb): trained and filled once per case."""
    key = CASES.index(request.param)
    if key not in _BUILT:
        enc, spec, floor = request.param
        xb, _ = data
        index = build_index(enc, spec, xb.shape[1], folder=tmp_path_factory.mktemp("idx"))
        if not index.is_trained:
            index.train(xb)
        ids = np.arange(len(xb), dtype=np.int64) + IDS_OFFSET
        index.add(ids, xb)
        _BUILT[key] = (index, floor, ids)
    index, floor, ids = _BUILT[key]
    return index, floor, ids, data[0]


def test_recall_floor(built, data):
    index, floor, ids, xb = built
    res = index.search(data[1], 10)
    assert res.ids.shape == (100, 10) and res.scores.dtype == np.float32
    assert recall(res.ids, exact_topk(data[1], xb, 10, ids)[1]) >= floor
    assert (np.diff(res.scores, axis=1) <= 1e-6).all()  # sorted best first


def test_filter_applies_inside_the_scan(built, data):
    index, _, ids, _ = built
    allowed = ids[::100]  # 1% of the points
    res = index.search(data[1][:10], 10, params=SearchParams(nprobe=16), allowed=allowed)
    assert np.isin(res.ids, allowed).all()  # and k hits come back although 99% are excluded


def test_save_load_round_trip_is_exact(built, data, tmp_path):
    index, *_ = built
    save_index(index, tmp_path / "saved")
    back = load_index(tmp_path / "saved")
    a, b = index.search(data[1], 10), back.search(data[1], 10)
    np.testing.assert_array_equal(a.ids, b.ids)
    np.testing.assert_array_equal(a.scores, b.scores)
    assert back.ntotal == index.ntotal


def test_bytes_are_accounted(built):
    index, *_ = built
    per_vector = index.bytes_in_ram() / index.ntotal
    assert per_vector >= index.encoder.code_size + 8  # codes + a 64-bit id at least
    if index.vectors is not None:
        assert index.bytes_on_disk() >= index.ntotal * index.dim * 2


def test_bad_queries_raise_typed_errors(built):
    index, *_ = built
    with pytest.raises(InvalidInput, match="dimension"):
        index.search(np.zeros((1, 5), np.float32), 10)
    with pytest.raises(InvalidInput, match="NaN"):
        index.search(np.full((1, index.dim), np.nan, np.float32), 10)
    with pytest.raises(InvalidInput, match="k must be"):
        index.search(np.zeros((1, index.dim), np.float32), 0)


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_remove_hides_ids(case, data, tmp_path):
    enc, spec, _ = case
    xb, xq = data
    xb = xb[:1500]
    index = build_index(enc, spec, xb.shape[1], folder=tmp_path)
    if not index.is_trained:
        index.train(data[0])
    index.add(np.arange(len(xb)), xb)
    top = index.search(xq[:5], 3).ids[:, 0]
    assert index.remove(top) == len(np.unique(top))
    assert index.ntotal == len(xb) - len(np.unique(top))
    after = index.search(xq[:5], 10).ids
    assert not np.isin(after, top).any()
    assert index.remove([10**12]) == 0


def test_untrained_index_refuses_add(data):
    index = build_index(PQ, {"kind": "flat"}, 32)
    with pytest.raises(NotTrained):
        index.add([1], data[0][:1])
