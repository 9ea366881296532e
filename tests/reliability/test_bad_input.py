"""A corpus of bad requests: each gets its specific 4xx with the JSON error shape, and the
stored data is byte-for-byte unchanged afterwards (every file of the collection hashed)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest
from crash_helpers import ForkServer
from fastapi.testclient import TestClient

DIM = 16
V = [0.25] * DIM
JSON = {"content-type": "application/json"}


def nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def upsert(raw: bytes) -> tuple[str, str, bytes]:
    return "PUT", "/collections/c/points", raw


def js(obj: object) -> bytes:
    return json.dumps(obj).encode()


def point(**fields: object) -> bytes:
    return js({"points": [{"id": 9, "vector": V, **fields}]})


NAN32 = base64.b64encode(np.full(DIM, np.nan, np.float32).tobytes()).decode()
CORPUS: list[tuple[str, tuple[str, str, bytes], int, str]] = [
    ("wrong dimension", upsert(point(vector=[0.1] * (DIM - 1))), 400, "invalid_input"),
    (
        "NaN literal",
        upsert(b'{"points": [{"id": 9, "vector": [NaN' + b", 1" * 15 + b"]}]}"),
        400,
        "invalid_input",
    ),
    ("NaN in base64", upsert(point(vector=None, vector_b64=NAN32)), 400, "invalid_input"),
    ("overflow to inf", upsert(point(vector=[1e39] * DIM)), 400, "invalid_input"),
    ("empty vector", upsert(point(vector=[])), 400, "invalid_input"),
    ("10**6-element vector", upsert(point(vector=[0.5] * 10**6)), 400, "invalid_input"),
    (
        "payload 100 levels deep",
        upsert(
            b'{"points": [{"id": 9, "vector": ' + js(V) + b', "payload": ' + nested(100) + b"}]}"
        ),
        400,
        "invalid_input",
    ),
    (
        "payload 3000 levels deep",
        upsert(
            b'{"points": [{"id": 9, "vector": ' + js(V) + b', "payload": ' + nested(3000) + b"}]}"
        ),
        400,
        "invalid_input",
    ),
    (
        "invalid UTF-8 payload",
        upsert(b'{"points": [{"id": 9, "vector": ' + js(V) + b', "payload": {"s": "\xff\xfe"}}]}'),
        400,
        "invalid_input",
    ),
    (
        "invalid UTF-8 id",
        upsert(b'{"points": [{"id": "\xc3\x28", "vector": ' + js(V) + b"}]}"),
        400,
        "invalid_input",
    ),
    ("negative id", upsert(point(id=-1)), 400, "invalid_input"),
    ("id 2**64", upsert(js({"points": [{"id": 2**64, "vector": V}]})), 400, "invalid_input"),
    ("float id", upsert(js({"points": [{"id": 1.5, "vector": V}]})), 400, "invalid_input"),
    ("unknown point field", upsert(point(colour="red")), 400, "invalid_input"),
    ("unknown batch field", upsert(js({"points": [], "extra": 1})), 400, "invalid_input"),
    (
        "malformed base64",
        upsert(point(vector=None, vector_b64="@@not base64@@")),
        400,
        "invalid_input",
    ),
    ("ragged base64", upsert(point(vector=None, vector_b64="AAAA" * 3)), 400, "invalid_input"),
    ("malformed JSON", upsert(b'{"points": [{"id": 9,'), 400, "invalid_input"),
    ("JSON array body", upsert(b"[1, 2, 3]"), 400, "invalid_input"),
    ("oversize body", upsert(b'{"points": [' + b" " * (9 << 20) + b"]}"), 413, "payload_too_large"),
    (
        "huge k",
        ("POST", "/collections/c/search", js({"vector": V, "k": 10**9})),
        400,
        "invalid_input",
    ),
    (
        "k as 10**30",
        ("POST", "/collections/c/search", js({"vector": V, "k": 10**30})),
        400,
        "invalid_input",
    ),
    (
        "search unknown field",
        ("POST", "/collections/c/search", js({"vector": V, "knn": 3})),
        400,
        "invalid_input",
    ),
    (
        "search NaN base64",
        ("POST", "/collections/c/search", js({"vector_b64": NAN32})),
        400,
        "invalid_input",
    ),
    (
        "filter 300 deep",
        (
            "POST",
            "/collections/c/search",
            b'{"vector": ' + js(V) + b', "filter": ' + b'{"must": [' * 300 + b"]}" * 300 + b"}",
        ),
        400,
        "invalid_input",
    ),
    (
        "search invalid UTF-8",
        ("POST", "/collections/c/search", b'{"text": "\xff"}'),
        400,
        "invalid_input",
    ),
    (
        "delete invalid UTF-8",
        ("POST", "/collections/c/points/delete", b'{"ids": ["\xff"]}'),
        400,
        "invalid_input",
    ),
    (
        "delete ids and filter",
        ("POST", "/collections/c/points/delete", js({"ids": [1], "filter": {"must": []}})),
        400,
        "invalid_input",
    ),
    (
        "delete id out of range",
        ("POST", "/collections/c/points/delete", js({"ids": [-5]})),
        400,
        "invalid_input",
    ),
    (
        "scroll bad cursor",
        ("POST", "/collections/c/points/scroll", js({"cursor": "../1"})),
        400,
        "invalid_input",
    ),
    (
        "scroll limit 0",
        ("POST", "/collections/c/points/scroll", js({"limit": 0})),
        400,
        "invalid_input",
    ),
    (
        "get id out of range",
        ("GET", "/collections/c/points/18446744073709551616", b""),
        400,
        "invalid_input",
    ),
    ("respec existing", ("PUT", "/collections/c", js({"dim": DIM + 1})), 409, "conflict"),
    (
        "spec invalid UTF-8",
        ("PUT", "/collections/c", b'{"dim": 4, "x": "\xff"}'),
        422,
        "invalid_spec",
    ),
    (
        "restore unknown snapshot",
        ("POST", "/collections/c/snapshots/restore", js({"snapshot": "nope.tar"})),
        404,
        "not_found",
    ),
    (
        "restore invalid UTF-8",
        ("POST", "/collections/c/snapshots/restore", b'{"snapshot": "\xff"}'),
        400,
        "invalid_input",
    ),
    (
        "upload garbage",
        ("PUT", "/collections/c/snapshots/upload", b"not a tarball"),
        400,
        "invalid_input",
    ),
]


def fingerprint(folder: Path) -> dict[str, str]:
    """sha256 of every file of a collection (the -shm index is shared memory, not data)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not p.name.endswith("-shm")
    }


@pytest.fixture
def loaded(app_client: Callable[..., TestClient], tmp_path: Path) -> tuple[TestClient, Path]:
    client = app_client(max_body_bytes=8 << 20)
    assert client.put("/collections/c", json={"dim": DIM, "metric": "ip"}).status_code == 201
    x = np.random.default_rng(5).standard_normal((20, DIM)).astype(np.float32)
    body = {"points": [{"id": i, "vector": x[i].tolist(), "payload": {"i": i}} for i in range(20)]}
    assert client.put("/collections/c/points", json=body).status_code == 200
    return client, tmp_path / "data" / "collections" / "c"


def test_bad_input_corpus_is_4xx_and_changes_no_byte(loaded: tuple[TestClient, Path]) -> None:
    client, folder = loaded
    before = fingerprint(folder)
    for name, (method, path, raw), status, code in CORPUS:
        r = client.request(method, path, content=raw, headers=JSON)
        assert r.status_code == status, (name, r.status_code, r.text[:300])
        body = r.json()
        assert set(body) == {"error"} and body["error"]["code"] == code, (name, body)
        assert fingerprint(folder) == before, f"{name}: stored bytes changed"
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 20


def test_concurrent_conflicting_creation_has_one_winner(forks: ForkServer, tmp_path: Path) -> None:
    server = forks.start(tmp_path / "data")
    specs = [{"dim": 8 + (i % 4)} for i in range(12)]  # four different specs, three times each
    results: list[tuple[int, int, str]] = []
    barrier = threading.Barrier(len(specs))

    def create(i: int) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            barrier.wait()
            r = http.put("/collections/race", json=specs[i])
            code = r.json()["error"]["code"] if r.status_code >= 400 else ""
            results.append((specs[i]["dim"], r.status_code, code))

    threads = [threading.Thread(target=create, args=(i,)) for i in range(len(specs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    winners = {dim for dim, status, _ in results if status == 201}
    assert len(winners) == 1 and sum(s == 201 for _, s, _ in results) == 1, results
    (dim,) = winners
    for d, status, code in results:
        assert (status, code) == ((201, "") if d == dim else (409, "conflict")) or (
            d == dim and status == 200
        ), results
    info = httpx.get(f"{server.url}/collections/race").json()
    assert info["spec"]["dim"] == dim
    assert [p.name for p in (tmp_path / "data" / "collections").iterdir()] == ["race"]
    server.kill()
