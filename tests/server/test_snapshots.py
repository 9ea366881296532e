"""Snapshots: consistent tarballs, restore by name or upload, refusal of unsafe tarballs."""

from __future__ import annotations

import io
import tarfile

from fastapi.testclient import TestClient
from server_helpers import FAST_PQ, points_body, unit_rows

DIM = 16


def state(client: TestClient, name: str = "c") -> tuple[list, dict]:
    page = client.post(
        f"/collections/{name}/points/scroll", json={"limit": 1000, "with_vectors": True}
    ).json()
    points = sorted((p["id"], p["payload"], p["vector"]) for p in page["points"])
    return points, client.get(f"/collections/{name}").json()


def test_snapshot_restore_by_name_and_by_upload(client: TestClient) -> None:
    spec = {"dim": DIM, "metric": "ip", "encoder": FAST_PQ | {"m": 4}, "train_size": 200}
    client.put("/collections/c", json=spec)
    x = unit_rows(300, DIM, seed=1)
    client.put("/collections/c/points", json=points_body(x[:250]))
    client.post("/collections/c/train", params={"wait": True})
    snap = client.post("/collections/c/snapshots")
    assert snap.status_code == 201
    name = snap.json()["name"]
    points_then, _ = state(client)
    q = x[5].tolist()
    hits_then = client.post("/collections/c/search", json={"vector": q, "k": 5}).json()
    # change everything after the snapshot
    client.put("/collections/c/points", json=points_body(x[250:], ids=list(range(250, 300))))
    client.post("/collections/c/points/delete", json={"ids": list(range(0, 50))})
    assert client.get("/collections/c/snapshots").json()["snapshots"][0]["name"] == name
    restored = client.post("/collections/c/snapshots/restore", json={"snapshot": name})
    assert restored.status_code == 200, restored.text
    points_now, info_now = state(client)
    assert points_now == points_then and info_now["points"] == 250 == info_now["indexed_points"]
    assert info_now["training"]["trained"]
    assert client.post("/collections/c/search", json={"vector": q, "k": 5}).json() == hits_then
    tarball = client.get(f"/collections/c/snapshots/{name}")
    assert tarball.status_code == 200 and tarball.headers["content-type"] == "application/x-tar"
    up = client.put("/collections/copy/snapshots/upload", content=tarball.content)
    assert up.status_code == 200, up.text
    assert state(client, "copy")[0] == points_then
    client.put("/collections/copy/points", json=points_body(x[:1], ids=[999]))
    assert client.get("/collections/c/points/999").status_code == 404  # independent copies
    client.delete("/collections/c")
    again = client.post("/collections/c/snapshots/restore", json={"snapshot": name})
    assert again.status_code == 200 and state(client)[0] == points_then


def test_unsafe_or_broken_snapshots_are_refused(client: TestClient) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = b"oops"
        info = tarfile.TarInfo("../../escape.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    r = client.put("/collections/evil/snapshots/upload", content=buf.getvalue())
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_input"
    r = client.put("/collections/evil/snapshots/upload", content=b"not a tarball at all")
    assert r.status_code == 400
    assert client.get("/collections").json()["collections"] == []
    r = client.get("/collections/c/snapshots/..%2F..%2Fetc%2Fpasswd")
    assert r.status_code in (400, 404)
    r = client.post("/collections/c/snapshots/restore", json={"snapshot": "../x.tar"})
    assert r.status_code == 400
