"""Security: with keys configured every collection route refuses a request without a valid
key (401), the read-only key cannot write (403) and writes nothing, collection and snapshot
names cannot leave the data directory, keys are compared with hmac.compare_digest, and no
key appears in the server's log (debug level) or its metrics."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from crash_helpers import ForkServer
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from server.auth import require_write
from server.routes import collections, points, search, snapshots

RW, RO = "rw-Key-7f3a9c", "ro-Key-51d2e0"
PARAMS = {"{name}": "c", "{point_id}": "1", "{snapshot}": "c-1.tar"}
DIM = 4


def routes() -> list[tuple[str, str, bool]]:
    """(method, concrete path, is a write) of every collection route."""
    out = []
    every = [r for m in (collections, points, search, snapshots) for r in m.router.routes]
    for route in every:
        if not isinstance(route, APIRoute) or not route.path.startswith("/collections"):
            continue
        path = route.path
        for key, value in PARAMS.items():
            path = path.replace(key, value)
        write = any(d.dependency is require_write for d in route.dependencies)
        out.extend((method, path, write) for method in sorted(route.methods))
    return out


def error_code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


def test_keys_guard_every_collection_route(app_client: Callable[..., TestClient]) -> None:
    client = app_client(api_key=RW, read_only_api_key=RO)
    rw, ro = {"Authorization": f"Bearer {RW}"}, {"api-key": RO}
    assert client.put("/collections/c", json={"dim": DIM}, headers=rw).status_code == 201
    body = {"points": [{"id": 1, "vector": [1.0, 0, 0, 0], "payload": {"a": 1}}]}
    assert client.put("/collections/c/points", json=body, headers=rw).status_code == 200
    found = routes()
    assert len(found) >= 15 and sum(w for *_, w in found) >= 7
    for method, path, write in found:
        for headers in (
            {},
            {"api-key": "wrong"},
            {"Authorization": f"Bearer {RW}x"},
            {"Authorization": RW},
        ):
            r = client.request(method, path, json={}, headers=headers)
            assert (r.status_code, error_code(r)) == (401, "unauthorized"), (method, path, headers)
        if write:
            r = client.request(method, path, json={}, headers=ro)
            assert (r.status_code, error_code(r)) == (403, "forbidden"), (method, path)
        else:
            r = client.request(method, path, json={"vector": [1.0, 0, 0, 0]}, headers=ro)
            assert r.status_code not in (401, 403), (method, path, r.text)
    assert client.get("/collections", headers=ro).json() == {"collections": ["c"]}
    point = client.get("/collections/c/points/1", headers=ro).json()
    assert point["payload"] == {"a": 1} and point["version"] == 1  # the read-only key wrote nothing
    assert client.get("/collections/c/snapshots", headers=ro).json() == {"snapshots": []}


def test_keys_are_compared_in_constant_time(
    app_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_client(api_key=RW, read_only_api_key=RO)
    seen: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    assert client.get("/collections", headers={"api-key": "guess"}).status_code == 401
    assert client.get("/collections", headers={"api-key": RO}).status_code == 200
    assert (b"guess", RW.encode()) in seen and (RO.encode(), RO.encode()) in seen


@pytest.mark.parametrize(
    "name",
    [
        "..",
        "...",
        "../escape",
        "..%2Fescape",
        "%2e%2e",
        "a%2F..%2F..%2Fescape",
        ".hidden",
        "x" * 65,
        "a%00b",
        "%C3%A9t%C3%A9",
        "c:",
        "a b",
    ],
)
def test_collection_names_stay_inside_the_data_directory(
    app_client: Callable[..., TestClient], tmp_path: Path, name: str
) -> None:
    client = app_client()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for method, path, body in [
        ("PUT", f"/collections/{name}", {"dim": DIM}),
        ("PUT", f"/collections/{name}/snapshots/upload", {"dim": DIM}),
        ("POST", f"/collections/{name}/snapshots/restore", {"snapshot": "../../x.tar"}),
        ("POST", f"/collections/{name}/snapshots", {}),
        ("GET", f"/collections/{name}/snapshots/..%2F..%2Fcollections%2Fc%2Fspec.json", {}),
    ]:
        r = client.request(method, path, json=body)
        assert r.status_code in (400, 404, 405), (method, path, r.status_code, r.text)
        assert set(r.json()) == {"error"}
    after = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    assert after == before and client.get("/collections").json() == {"collections": []}


def test_keys_never_reach_the_log_or_metrics(forks: ForkServer, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    server = forks.start(
        tmp_path / "data", log_file=log, api_key=RW, read_only_api_key=RO, log_level="debug"
    )
    with httpx.Client(base_url=server.url, timeout=30) as http:
        rw, ro = {"Authorization": f"Bearer {RW}"}, {"api-key": RO}
        assert http.put("/collections/c", json={"dim": DIM}, headers=rw).status_code == 201
        assert http.put("/collections/c", json={"dim": DIM}, headers=ro).status_code == 403
        wrong = {"api-key": RW + "-wrong"}
        assert http.get("/collections", headers=wrong).status_code == 401
        assert (
            http.post(
                "/collections/c/search", json={"vector": [1, 0, 0, 0]}, headers=wrong
            ).status_code
            == 401
        )
        assert http.post("/collections/c/search", json={"nope": 1}, headers=ro).status_code == 400
        metrics = http.get("/metrics", headers=ro).text
    server.kill()
    text = log.read_text()
    assert "GET /collections" in text or "collections" in text  # the log did record requests
    for key in (RW, RO):
        assert key not in text and key not in metrics
