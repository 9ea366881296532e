"""The request paths built for speed behave like the plain ones: the raw-bytes vectors_b64
slice, the columnar batch form, the search fast path and the micro-batching dispatcher;
plus readiness, the CLI settings and the demo collection."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import orjson
import pytest
from fastapi.testclient import TestClient
from server_helpers import fake_embedders, points_body, unit_rows, wait_ready

from core.errors import InvalidInput
from server.app import create_app
from server.bodies import _object
from server.cli import build_parser, settings_from
from server.service.registry import Service
from server.settings import Settings

DIM = 8


def b64(x: np.ndarray, dtype: str = "<f4") -> str:
    return base64.b64encode(x.astype(dtype).tobytes()).decode()


def test_vectors_b64_slice_is_the_top_level_string_only() -> None:
    data = b64(np.arange(4, dtype=np.float32))
    nested = {"points": [{"id": 1, "payload": {"vectors_b64": "not me"}}], "vectors_b64": data}
    doc = _object(orjson.dumps(nested))  # the nested key comes first: plain parse
    assert doc["vectors_b64"] == data and doc["points"][0]["payload"] == {"vectors_b64": "not me"}
    fast = _object(
        orjson.dumps({"vectors_b64": data, "points": [{"id": 1, "payload": {"vectors_b64": "x"}}]})
    )
    assert (
        isinstance(fast["vectors_b64"], memoryview) and bytes(fast["vectors_b64"]) == data.encode()
    )
    assert fast["points"][0]["payload"] == {"vectors_b64": "x"}
    escaped = b'{"points": [], "vectors_b64": "AAAA\\/AAA"}'  # JSON escape: parsed normally
    assert _object(escaped)["vectors_b64"] == "AAAA/AAA"
    with pytest.raises(InvalidInput):
        _object(b'{"vectors_b64": "abc')


def test_columnar_batch_and_escaped_base64(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": DIM, "metric": "ip"})
    x = unit_rows(30, DIM, seed=1)
    body = {
        "ids": list(range(30)),
        "payloads": [{"n": i} for i in range(30)],
        "vectors_b64": b64(x),
        "shape": [30, DIM],
    }
    assert client.put("/collections/c/points", json=body).json()["count"] == 30
    assert client.get("/collections/c/points/29").json()["payload"] == {"n": 29}
    text = b64(x[:1]).replace("/", "\\/")
    raw = ('{"ids": [100], "vectors_b64": "' + text + '", "shape": [1, 8]}').encode()
    assert client.put("/collections/c/points", content=raw).status_code == 200
    bad = client.put(
        "/collections/c/points", json={"ids": [1], "payloads": [1], "vectors_b64": b64(x[:1])}
    )
    assert bad.status_code == 400
    bad = client.put("/collections/c/points", json={"ids": [1, 2], "vectors_b64": b64(x[:1])})
    assert bad.status_code == 400


def test_concurrent_searches_match_sequential_ones(client: TestClient) -> None:
    client.put("/collections/c", json={"dim": DIM, "metric": "ip"})
    x = unit_rows(200, DIM, seed=2)
    client.put("/collections/c/points", json=points_body(x, payload=lambda i: {"g": i % 2}))
    bodies = [{"vector": q.tolist(), "k": 5} for q in unit_rows(40, DIM, seed=3)]
    bodies += [
        {"vector": q.tolist(), "k": 3, "filter": {"must": [{"key": "g", "match": {"value": 1}}]}}
        for q in unit_rows(10, DIM, seed=4)
    ]
    bodies.append({"vector": [0.1] * (DIM + 1), "k": 5})  # a bad one in the middle of a batch
    sequential = [client.post("/collections/c/search", json=b) for b in bodies]
    with ThreadPoolExecutor(16) as pool:
        concurrent = list(pool.map(lambda b: client.post("/collections/c/search", json=b), bodies))
    assert [r.status_code for r in concurrent] == [200] * 50 + [400]
    assert [r.json() for r in concurrent] == [r.json() for r in sequential]
    filtered = concurrent[45].json()["hits"]
    assert len(filtered) == 3 and all(h["payload"]["g"] == 1 for h in filtered)


def test_multivector_base64_query(client: TestClient) -> None:
    spec = {
        "dim": DIM,
        "multivector": True,
        "metric": "ip",
        "encoder": {"kind": "muvera", "r_reps": 2, "k_sim": 1, "d_proj": 4},
    }
    client.put("/collections/m", json=spec)
    docs = [unit_rows(3, DIM, seed=10 + i) for i in range(20)]
    body = {
        "points": [{"id": i, "vector_b64": b64(d), "shape": [3, DIM]} for i, d in enumerate(docs)]
    }
    assert client.put("/collections/m/points", json=body).status_code == 200
    q = {"vector_b64": b64(docs[7], "<f2"), "dtype": "float16", "shape": [3, DIM], "k": 1}
    assert client.post("/collections/m/search", json=q).json()["hits"][0]["id"] == 7


def test_readyz_is_503_until_collections_are_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = threading.Event()
    real = Service.open_all

    def slow_open(self: Service) -> None:
        gate.wait(10)
        real(self)

    monkeypatch.setattr(Service, "open_all", slow_open)
    with TestClient(create_app(Settings(data=tmp_path, cpu_threads=2), fake_embedders())) as client:
        assert client.get("/healthz").status_code == 200
        r = client.get("/readyz")
        assert r.status_code == 503 and r.json()["error"]["code"] == "not_ready"
        assert client.get("/collections").status_code == 503
        gate.set()
        wait_ready(client)
        ready = client.get("/readyz").json()
        assert ready["status"] == "ready" and ready["load_s"] >= 0 and ready["failed"] == {}
        assert client.get("/collections").json() == {"collections": []}


def test_cli_flags_override_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PITH_PORT", "9000")
    monkeypatch.setenv("PITH_API_KEY", "from-env")
    args = build_parser().parse_args(["serve", "--data", "/tmp/x", "--host", "0.0.0.0", "--demo"])
    settings = settings_from(args)
    assert settings.port == 9000 and settings.host == "0.0.0.0" and settings.demo
    assert settings.api_key is not None and settings.api_key.get_secret_value() == "from-env"
    assert "from-env" not in repr(settings)  # secrets never print
    args = build_parser().parse_args(["serve", "--port", "9100"])
    assert settings_from(args).port == 9100


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/share/wordnet/data.noun").exists(), reason="needs wordnet-base")
def test_demo_collection(make_client: Callable[..., TestClient]) -> None:
    client = make_client(demo=True, demo_size=60)
    info = client.get("/collections/wordnet").json()
    assert info["points"] == 60 and info["spec"]["embedder"] == "minilm"
    point = client.post("/collections/wordnet/points/scroll", json={"limit": 1}).json()["points"][0]
    assert set(point["payload"]) == {"lemmas", "definition", "pos"}
    text = f"{point['payload']['lemmas'][0]}: {point['payload']['definition']}"
    hits = client.post("/collections/wordnet/search", json={"text": text, "k": 1}).json()["hits"]
    assert hits[0]["id"] == point["id"]
