"""Unit tests of the service's small parts: spec, ids, vectors, payload index and filters,
the readers-writer lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.errors import InvalidInput
from server.service.filters import Filter, select
from server.service.ids import U64_MAX, id_key, id_value, path_id_key
from server.service.payloads import PayloadIndex
from server.service.rwlock import RWLock
from server.service.spec import CollectionSpec
from server.service.store import Store
from server.service.vectors import from_blobs, prepare, to_blobs


# spec ----------------------------------------------------------------------------------------
def test_spec_derives_index_metric_and_round_trips() -> None:
    spec = CollectionSpec.model_validate(
        {"dim": 8, "metric": "l2", "index": {"kind": "ivf", "nlist": 4}}
    )
    assert spec.index.metric == "l2" and spec.faiss_metric == "l2"
    cos = CollectionSpec.model_validate({"dim": 8, "metric": "cosine"})
    assert cos.index.metric == "ip"
    assert CollectionSpec.model_validate(spec.to_json()) == spec
    assert spec.needs_training and not cos.needs_training


@pytest.mark.parametrize(
    "body",
    [
        {"dim": 8, "metric": "l2", "index": {"kind": "flat", "metric": "ip"}},
        {"dim": 8, "multivector": True, "metric": "l2"},
        {"dim": 8, "encoder": {"kind": "muvera"}},
        {"dim": 8, "embedder": "minilm"},
        {"dim": 8, "index": {"kind": "ivf", "nlist": 64}, "train_size": 10},
        {"dim": 0},
        {"dim": 8, "bogus": 1},
    ],
)
def test_spec_refuses_contradictions(body: dict) -> None:
    with pytest.raises(ValidationError):
        CollectionSpec.model_validate(body)


def test_multivector_defaults_to_muvera() -> None:
    spec = CollectionSpec.model_validate({"dim": 8, "multivector": True})
    assert spec.encoder.kind == "muvera" and spec.multivector


# ids -----------------------------------------------------------------------------------------
def test_ids_are_canonical() -> None:
    u = "6F9619FF-8B86-D011-B42D-00CF4FC964FF"
    assert id_key(u) == u.lower() == path_id_key(u)
    assert id_key(U64_MAX) == str(U64_MAX) and id_value(str(U64_MAX)) == U64_MAX
    assert id_value(id_key(u)) == u.lower()
    assert path_id_key("42") == "42"
    for bad in (-1, U64_MAX + 1, True, 1.5, "not-a-uuid", None):
        with pytest.raises(InvalidInput):
            id_key(bad)


# vectors -------------------------------------------------------------------------------------
def test_prepare_normalises_rounds_and_validates() -> None:
    x = np.array([[3.0, 4.0]], np.float32)
    v = prepare(x, 2, None, normalise=True)
    np.testing.assert_allclose(v.data, [[0.6, 0.8]], atol=1e-3)
    assert np.array_equal(v.data, v.data.astype(np.float16).astype(np.float32))
    for bad in ([[np.nan, 1.0]], [[1e6, 1.0]], [[1.0, 2.0, 3.0]]):
        with pytest.raises(InvalidInput):
            prepare(np.array(bad, np.float32), 2, None, normalise=False)
    with pytest.raises(InvalidInput, match="zero vector"):
        prepare(np.zeros((1, 2)), 2, None, normalise=True)
    with pytest.raises(InvalidInput, match="empty multi-vector"):
        prepare(np.ones((2, 2)), 2, [0, 0, 2], normalise=False)


def test_blobs_round_trip_single_and_multi() -> None:
    single = prepare(np.arange(6, dtype=np.float32).reshape(3, 2), 2, None, False)
    back = from_blobs(to_blobs(single), 2, False)
    assert np.array_equal(back.data, single.data)
    multi = prepare(np.arange(10, dtype=np.float32).reshape(5, 2), 2, [0, 2, 5], False)
    back = from_blobs(to_blobs(multi), 2, True)
    assert np.array_equal(back.data, multi.data) and back.offsets.tolist() == [0, 2, 5]
    assert [len(p) for p in back.split()] == [2, 3]


# payload index and filters -------------------------------------------------------------------
def flt(**body: object) -> Filter:
    return Filter.model_validate(body)


@pytest.fixture
def index() -> PayloadIndex:
    idx = PayloadIndex()
    idx.add(
        1, "k1", {"color": "red", "n": 1, "tags": ["a", "b"], "meta": {"year": 2001}, "ok": True}
    )
    idx.add(
        2, "k2", {"color": "blue", "n": 2.5, "tags": ["b"], "meta": {"year": 1999}, "ok": False}
    )
    idx.add(3, "k3", {"color": "red", "n": 10, "meta": {"year": 2020}, "ok": 1})
    idx.add(4, "k4", None)
    return idx


def ids(index: PayloadIndex, f: Filter) -> list[int]:
    return select(f, index).tolist()


def test_filter_conditions(index: PayloadIndex) -> None:
    red = {"key": "color", "match": {"value": "red"}}
    assert ids(index, flt(must=[red])) == [1, 3]
    assert ids(index, flt(must=[{"key": "tags", "match": {"value": "b"}}])) == [1, 2]
    assert ids(index, flt(must=[{"key": "color", "match": {"any": ["blue", "green"]}}])) == [2]
    assert ids(index, flt(must=[{"key": "n", "range": {"gt": 1, "lte": 10}}])) == [2, 3]
    assert ids(index, flt(must=[{"key": "meta.year", "range": {"gte": 2000}}])) == [1, 3]
    assert ids(index, flt(must_not=[red])) == [2, 4]
    assert ids(index, flt(should=[red, {"key": "n", "range": {"lt": 3}}])) == [1, 2, 3]
    nested = flt(must=[red], must_not=[{"must": [{"key": "n", "range": {"gte": 5}}]}])
    assert ids(index, nested) == [1]


def test_bool_and_number_are_distinct(index: PayloadIndex) -> None:
    assert ids(index, flt(must=[{"key": "ok", "match": {"value": True}}])) == [1]
    assert ids(index, flt(must=[{"key": "ok", "match": {"value": 1}}])) == [3]


def test_removal_updates_cached_answers(index: PayloadIndex) -> None:
    red = flt(must=[{"key": "color", "match": {"value": "red"}}])
    rng = flt(must=[{"key": "n", "range": {"gte": 0}}])
    assert ids(index, red) == [1, 3] and ids(index, rng) == [1, 2, 3]
    index.remove(1)
    index.add(5, "k5", {"color": "red", "n": -1})
    assert ids(index, red) == [3, 5]
    assert ids(index, rng) == [2, 3]
    assert index.all_ids().tolist() == [2, 3, 4, 5]


def test_filter_needs_one_test_per_condition() -> None:
    with pytest.raises(ValidationError):
        flt(must=[{"key": "a"}])
    with pytest.raises(ValidationError):
        flt(must=[{"key": "a", "match": {"value": 1}, "range": {"gt": 0}}])


payloads = st.fixed_dictionaries(
    {"c": st.sampled_from(["x", "y", "z"]), "v": st.integers(-5, 5)},
    optional={"t": st.lists(st.sampled_from(["p", "q"]), max_size=2)},
)


@settings(max_examples=40, deadline=None)
@given(st.lists(payloads, min_size=1, max_size=30), st.integers(-5, 5), st.sampled_from(["x", "y"]))
def test_filters_match_brute_force(docs: list[dict], bound: int, color: str) -> None:
    idx = PayloadIndex()
    for i, d in enumerate(docs):
        idx.add(i, str(i), d)
    f = flt(
        must=[{"key": "v", "range": {"gte": bound}}],
        should=[{"key": "c", "match": {"value": color}}, {"key": "t", "match": {"value": "p"}}],
        must_not=[{"key": "c", "match": {"value": "z"}}],
    )
    expect = [
        i
        for i, d in enumerate(docs)
        if d["v"] >= bound and (d["c"] == color or "p" in d.get("t", [])) and d["c"] != "z"
    ]
    assert select(f, idx).tolist() == expect


# rwlock --------------------------------------------------------------------------------------
def test_rwlock_excludes_writer_from_readers() -> None:
    lock, log = RWLock(), []

    def reader() -> None:
        with lock.read():
            log.append("r+")
            time.sleep(0.05)
            log.append("r-")

    def writer() -> None:
        with lock.write():
            log.append("w+")
            log.append("w-")

    threads = [threading.Thread(target=reader) for _ in range(3)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    w = threading.Thread(target=writer)
    w.start()
    for t in [*threads, w]:
        t.join()
    i = log.index("w+")
    assert (
        log[i + 1] == "w-" and log.count("r-") == 3 and all(e == "r-" or e == "r+" for e in log[:i])
    )


def test_closing_a_store_leaves_a_reader_in_use_to_its_thread(tmp_path: Path) -> None:
    # closing a connection another thread reads through crashed the process (a segfault in
    # sqlite3 when the server stopped during a training run's sample read)
    store = Store(tmp_path / "store.sqlite")
    with store.reader() as conn:
        store.close()
        assert conn.execute("SELECT count(*) FROM points").fetchone() == (0,)  # still open
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")  # closed once given back
    with pytest.raises(sqlite3.ProgrammingError), store.reader():
        pass
