"""Search over HTTP against exact oracles: metrics, filters inside the scan, batches, text,
multi-vector (exact before training, MUVERA after)."""

from __future__ import annotations

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import FAST_PQ, points_body, unit_rows

DIM = 32


def search(client: TestClient, name: str = "c", **body: object) -> list[dict]:
    r = client.post(f"/collections/{name}/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()["hits"]


@pytest.mark.parametrize("metric", ["ip", "cosine", "l2"])
def test_exact_search_matches_brute_force(client: TestClient, metric: str) -> None:
    client.put("/collections/c", json={"dim": DIM, "metric": metric})
    x = np.random.default_rng(1).standard_normal((300, DIM)).astype(np.float32)
    client.put("/collections/c/points", json=points_body(x))
    stored = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    stored = stored.astype(np.float16).astype(np.float32)
    q = np.random.default_rng(2).standard_normal(DIM).astype(np.float32)
    hits = search(client, vector=q.tolist(), k=5)
    if metric == "l2":
        dist = np.linalg.norm(stored - q, axis=1)
        order = np.argsort(dist)[:5]
        np.testing.assert_allclose([h["score"] for h in hits], dist[order], rtol=1e-3)
        assert [h["score"] for h in hits] == sorted(h["score"] for h in hits)
    else:
        qv = q / np.linalg.norm(q) if metric == "cosine" else q
        scores = stored @ qv
        order = np.argsort(-scores)[:5]
        np.testing.assert_allclose([h["score"] for h in hits], scores[order], rtol=1e-2, atol=1e-2)
    assert [h["id"] for h in hits] == order.tolist()


def test_selective_filter_returns_k_hits_from_a_partial_ivf_scan(client: TestClient) -> None:
    spec = {
        "dim": DIM,
        "metric": "ip",
        "encoder": FAST_PQ,
        "index": {"kind": "ivf", "nlist": 16, "nprobe": 1, "rerank": {"enabled": True}},
        "train_size": 1000,
    }
    client.put("/collections/c", json=spec)
    x = unit_rows(3000, DIM, seed=3)
    client.put(
        "/collections/c/points", json=points_body(x, payload=lambda i: {"rare": i % 100 == 0})
    )
    assert client.post("/collections/c/train", params={"wait": True}).json() == {"state": "trained"}
    assert client.get("/collections/c").json()["training"]["trained"]
    rare = np.arange(0, 3000, 100)
    q = unit_rows(1, DIM, seed=4)[0]
    flt = {"must": [{"key": "rare", "match": {"value": True}}]}
    hits = search(client, vector=q.tolist(), k=10, filter=flt)
    truth = rare[np.argsort(-(x[rare].astype(np.float16).astype(np.float32) @ q))[:10]]
    assert len(hits) == 10 and all(h["payload"]["rare"] for h in hits)
    assert [h["id"] for h in hits] == truth.tolist()  # re-ranked exactly among the 30 allowed
    unfiltered = search(client, vector=q.tolist(), k=10)
    assert len(unfiltered) == 10


def test_batch_equals_single_searches_and_with_vectors(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": DIM})
    x = unit_rows(100, DIM, seed=5)
    client.put("/collections/c/points", json=points_body(x, payload=lambda i: {"g": i % 4}))
    qs = unit_rows(3, DIM, seed=6)
    searches = [
        {"vector": q.tolist(), "k": 4, "filter": {"must": [{"key": "g", "match": {"any": [1, 2]}}]}}
        for q in qs
    ]
    r = client.post("/collections/c/search/batch", json={"searches": searches}).json()["results"]
    assert [res["hits"] for res in r] == [search(client, **s) for s in searches]
    assert all(h["payload"]["g"] in (1, 2) for res in r for h in res["hits"])
    one = search(client, vector=qs[0].tolist(), k=1, with_payload=False, with_vectors=True)[0]
    assert "payload" not in one and len(one["vector"]) == DIM


def test_text_in_text_out(client: TestClient) -> None:
    client.put("/collections/t", json={"dim": 384, "embedder": "minilm"})
    texts = ["red apple fruit", "blue ocean water", "green forest tree", "fast red car"]
    body = {"points": [{"id": i, "text": t, "payload": {"text": t}} for i, t in enumerate(texts)]}
    assert client.put("/collections/t/points", json=body).status_code == 200
    hits = search(client, "t", text="ocean water", k=2)
    assert hits[0]["id"] == 1 and hits[0]["payload"]["text"] == "blue ocean water"
    r = client.post("/collections/t/search", json={"text": "   ", "k": 1})
    assert r.status_code == 400


def multi_points(n: int, seed: int) -> tuple[list[np.ndarray], dict]:
    rng = np.random.default_rng(seed)
    docs = [unit_rows(int(rng.integers(2, 7)), 8, seed=seed * 1000 + i) for i in range(n)]
    body = {"points": [{"id": i, "vectors": d.tolist()} for i, d in enumerate(docs)]}
    return docs, body


def chamfer(q: np.ndarray, docs: list[np.ndarray]) -> np.ndarray:
    return np.array([(q @ d.astype(np.float16).astype(np.float32).T).max(1).sum() for d in docs])


def test_multivector_exact_then_muvera(client: TestClient) -> None:
    spec = {
        "dim": 8,
        "multivector": True,
        "metric": "ip",
        "encoder": {
            "kind": "muvera",
            "r_reps": 4,
            "k_sim": 2,
            "d_proj": 8,
            "fde": {**FAST_PQ, "m": 16},
        },
        "train_size": 300,
    }
    assert client.put("/collections/m", json=spec).status_code == 201
    docs, body = multi_points(250, seed=7)
    client.put("/collections/m/points", json=body)
    info = client.get("/collections/m").json()
    assert info["training"]["state"] == "untrained" and info["indexed_points"] == 250
    q = unit_rows(3, 8, seed=8)
    truth = np.argsort(-chamfer(q, docs))[:5]
    hits = search(client, "m", vectors=q.tolist(), k=5)
    assert [h["id"] for h in hits] == truth.tolist()  # exact Chamfer before training
    more, body2 = multi_points(100, seed=9)
    body2["points"] = [{**p, "id": p["id"] + 250} for p in body2["points"]]
    client.put("/collections/m/points", json=body2)
    client.post("/collections/m/train", params={"wait": True})
    info = client.get("/collections/m").json()
    assert info["training"]["trained"] and info["indexed_points"] == 350
    docs += more
    truth = set(np.argsort(-chamfer(q, docs))[:10].tolist())
    found = {
        h["id"] for h in search(client, "m", vectors=q.tolist(), k=10, params={"oversample": 20})
    }
    assert len(found & truth) >= 7
    bad = client.put("/collections/m/points", json={"points": [{"id": 1, "vectors": []}]})
    assert bad.status_code == 400 and "empty" in bad.json()["error"]["message"]
    bad = client.post("/collections/m/search", json={"vector": [0.1] * 8})
    assert bad.status_code == 400
