"""Congruence: every SDK call against a live server and against the embedded engine (each
on its own data folder, loaded with the same seeded data) gives the same result, ties
allowed, or raises the same error class."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from client_helpers import FAST_PQ, LiveServer, assert_same, mixed_ids, payload, rows
from pith_client import Client
from pith_client.errors import PithError

N, DIM = 600, 16
Q = rows(6, DIM, seed=7)
Q_L2 = rows(3, 8, seed=8)
TOKENS = [rows(int(t), 8, seed=100 + i) for i, t in enumerate([2, 3, 5, 4] * 20)]
QUERY_TOKENS = rows(3, 8, seed=9)
MUVERA = {"kind": "muvera", "r_reps": 4, "k_sim": 2, "d_proj": 4}
GROUP_2 = {"must": [{"key": "group", "match": {"value": 2}}]}
NOT_RED = {"must_not": [{"key": "tag", "match": {"value": "red"}}]}
RANGE = {"must": [{"key": "w", "range": {"gte": 10, "lt": 60}}]}
ANY = {"should": [{"key": "group", "match": {"any": [0, 4]}}, {"key": "i", "range": {"lt": 5}}]}


def load(client: Client) -> None:
    """The same collections and writes, in the same order, on either client."""
    client.create_collection("cg_plain", dim=DIM, metric="cosine")
    ids = mixed_ids(N, seed=3)
    client.upload(
        "cg_plain", ids, rows(N, DIM, seed=1), [payload(i) for i in range(N)], batch_size=128
    )
    client.create_collection("cg_l2", dim=8, metric="l2")
    client.upload("cg_l2", None, rows(300, 8, seed=2), [payload(i) for i in range(300)])
    client.create_collection("cg_multi", dim=8, multivector=True, encoder=MUVERA)
    client.upload("cg_multi", None, TOKENS, [payload(i) for i in range(len(TOKENS))])
    spec = {
        "dim": DIM,
        "encoder": FAST_PQ,
        "train_size": 10_000,
        "index": {"kind": "flat", "rerank": {"enabled": True, "oversample": 4}},
    }
    client.create_collection("cg_pq", spec)
    client.upload("cg_pq", None, rows(N, DIM, seed=4), [payload(i) for i in range(N)])
    assert client.train("cg_pq", wait=True) == "trained"


@pytest.fixture(scope="module")
def pair(live_server: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    remote = Client(live_server.url, retries=0)
    local = Client(path=tmp_path_factory.mktemp("embedded") / "data")
    for client in (remote, local):
        load(client)
    yield remote, local
    remote.close()
    local.close()


def outcome(call: Callable[[Client], Any], client: Client) -> tuple[str, Any]:
    try:
        return "ok", call(client)
    except PithError as exc:
        return "error", (type(exc).__name__, exc.code, exc.status)


UUID0 = mixed_ids(N, seed=3)[0]
CALLS: dict[str, Callable[[Client], Any]] = {
    "list_collections": lambda c: [n for n in c.list_collections() if n.startswith("cg_")],
    "info_plain": lambda c: c.get_collection("cg_plain"),
    "info_pq": lambda c: c.get_collection("cg_pq"),
    "search": lambda c: [c.search("cg_plain", q, k=10) for q in Q],
    "search_k_over_n": lambda c: c.search("cg_l2", Q_L2[0], k=1000, with_payload=False),
    "search_filter_eq": lambda c: c.search("cg_plain", Q[0], k=20, filter=GROUP_2),
    "search_filter_not": lambda c: c.search("cg_plain", Q[1], k=7, filter=NOT_RED),
    "search_filter_range": lambda c: c.search("cg_plain", Q[2], k=15, filter=RANGE),
    "search_filter_should": lambda c: c.search("cg_plain", Q[3], k=15, filter=ANY),
    "search_vectors": lambda c: c.search("cg_plain", Q[4], k=5, with_vectors=True),
    "search_float16": lambda c: c.search("cg_plain", Q[5].astype(np.float16), k=5),
    "search_l2": lambda c: [c.search("cg_l2", q, k=8) for q in Q_L2],
    "search_multi": lambda c: c.search("cg_multi", QUERY_TOKENS, k=10, with_vectors=True),
    "search_pq": lambda c: [c.search("cg_pq", q, k=10) for q in Q],
    "search_pq_params": lambda c: c.search("cg_pq", Q[0], k=10, params={"rerank": False}),
    "search_batch": lambda c: c.search_batch("cg_plain", Q, k=6, filter=NOT_RED),
    "search_batch_multi": lambda c: c.search_batch("cg_multi", TOKENS[:4], k=3),
    "scroll": lambda c: list(c.scroll("cg_plain", batch_size=97)),
    "scroll_filter": lambda c: list(c.scroll("cg_l2", RANGE, batch_size=5, with_vectors=True)),
    "count": lambda c: [c.count("cg_plain"), *(c.count("cg_plain", f) for f in (GROUP_2, ANY))],
    "get_int": lambda c: c.get("cg_plain", 1003, with_vector=True),
    "get_uuid": lambda c: c.get("cg_plain", UUID0),
    "get_multi": lambda c: c.get("cg_multi", 3, with_vector=True).vector.shape,
    "error_dim": lambda c: c.search("cg_plain", np.ones(DIM + 1)),
    "error_nan": lambda c: c.upsert("cg_plain", [1], np.full((1, DIM), np.nan)),
    "error_unknown_collection": lambda c: c.search("nope", Q[0]),
    "error_bad_name": lambda c: c.get_collection("bad name!"),
    "error_missing_point": lambda c: c.get("cg_plain", 999_999),
    "error_bad_filter": lambda c: c.count("cg_plain", {"must": [{"key": "i"}]}),
    "error_k": lambda c: c.search("cg_plain", Q[0], k=0),
    "error_conflict": lambda c: c.create_collection("cg_plain", dim=DIM + 1),
    "error_spec": lambda c: c.create_collection("cg_bad", dim=8, metric="hamming"),
    "error_multi_shape": lambda c: c.search("cg_multi", np.ones((2, 5))),
    "error_delete_nothing": lambda c: c.delete("cg_plain"),
    "error_text": lambda c: c.search("cg_plain", text="no embedder here"),
    "error_snapshot": lambda c: c.restore_snapshot("cg_plain", "missing.tar"),
}


@pytest.mark.parametrize("name", list(CALLS))
def test_same_result_embedded_and_remote(pair: tuple[Client, Client], name: str) -> None:
    remote, local = pair
    got_remote, got_local = outcome(CALLS[name], remote), outcome(CALLS[name], local)
    assert got_remote[0] == got_local[0], (got_remote, got_local)
    if got_remote[0] == "error":
        assert got_remote[1] == got_local[1]
        assert name.startswith("error_"), got_remote
    else:
        assert not name.startswith("error_")
        assert_same(got_remote[1], got_local[1])


def test_writes_snapshots_and_deletes_agree(pair: tuple[Client, Client], tmp_path: Path) -> None:
    """A sequence of writes on both sides; after each step the observable state agrees."""
    remote, local = pair
    x = rows(200, 8, seed=11)
    steps: list[Callable[[Client], Any]] = [
        lambda c: c.create_collection("cg_mut", dim=8, metric="ip").points,
        lambda c: c.upsert("cg_mut", range(200), x, [payload(i) for i in range(200)]).count,
        lambda c: c.upsert("cg_mut", [5], x[:1] * 2, [{"replaced": True}]).count,
        lambda c: c.get("cg_mut", 5, with_vector=True),
        lambda c: c.delete("cg_mut", [1, 2, 3, 12345]).count,
        lambda c: c.delete("cg_mut", filter=GROUP_2).count,
        lambda c: c.count("cg_mut"),
        lambda c: len(c.list_snapshots("cg_mut")),
        lambda c: c.create_snapshot("cg_mut").name.startswith("cg_mut-"),
        lambda c: c.delete("cg_mut", filter=NOT_RED).count,
        lambda c: c.count("cg_mut"),
        lambda c: c.restore_snapshot("cg_mut", c.list_snapshots("cg_mut")[0].name).points,
        lambda c: c.search("cg_mut", x[7], k=10),
        lambda c: list(c.scroll("cg_mut", batch_size=50)),
        lambda c: c.delete_collection("cg_mut"),
        lambda c: "cg_mut" in c.list_collections(),
    ]
    results = []
    for step in steps:
        a, b = outcome(step, remote), outcome(step, local)
        assert a[0] == b[0] == "ok", (a, b)
        assert_same(a[1], b[1])
        results.append(a[1])
    assert results[1] == 200 and results[4] == 3  # the unknown id is not counted
    assert results[3].payload == {"replaced": True}
    assert results[6] == 200 - 3 - 40 + 1  # ids 1-3 gone; group 2 held 40, id 2 among them
    assert results[10] < results[6] and results[11] == results[6]  # the restore undid it
    assert results[-1] is False


def test_async_client_agrees(pair: tuple[Client, Client], live_server: LiveServer) -> None:
    """AsyncClient over HTTP gives what the (sync) embedded client gives."""
    import asyncio

    from pith_client import AsyncClient

    _, local = pair

    async def run() -> list[Any]:
        async with AsyncClient(live_server.url) as client:
            return [
                await client.search("cg_plain", Q[0], k=10, filter=NOT_RED),
                await client.search_batch("cg_l2", Q_L2, k=4),
                [p async for p in client.scroll("cg_plain", GROUP_2, batch_size=33)],
                await client.count("cg_plain", RANGE),
                await client.get("cg_plain", UUID0, with_vector=True),
                await client.get_collection("cg_multi"),
            ]

    expected = [
        local.search("cg_plain", Q[0], k=10, filter=NOT_RED),
        local.search_batch("cg_l2", Q_L2, k=4),
        list(local.scroll("cg_plain", GROUP_2, batch_size=33)),
        local.count("cg_plain", RANGE),
        local.get("cg_plain", UUID0, with_vector=True),
        local.get_collection("cg_multi"),
    ]
    got = asyncio.run(run())
    assert len(got[2]) == 120 and got[3] > 0
    for a, b in zip(got, expected, strict=True):
        assert_same(a, b)
