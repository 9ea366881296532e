"""Disk full and a read-only data directory: writes get a clean 507 (disk_full) or 503
(read_only), never a 500; nothing acknowledged is lost, the store stays intact, and writes
succeed again once space returns.

The disk-full test runs a real server on a 12 MiB tmpfs (needs root to mount; skipped
otherwise); one read-only test injects the errors SQLite and the OS raise into a running
server, another starts a server on a read-only bind mount (root and unshare; skipped
otherwise): it serves every read, refuses every write with 503, and reads what an earlier
server acknowledged but left in the WAL only (kill -9)."""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from crash_helpers import ROOT, ForkServer, scroll_all
from fastapi.testclient import TestClient
from test_e2e import free_port

from server.service import snapshots
from server.service.store import Store

DIM = 64


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 12 MiB tmpfs mounted at tmp_path/small (unmounted afterwards)."""
    mount = tmp_path / "small"
    mount.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("no mount command")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=12m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def batch(x: np.ndarray, first: int) -> dict:
    return {
        "points": [
            {
                "id": first + i,
                "vector": x[i].tolist(),
                "payload": {"id": first + i, "pad": "y" * 200},
            }
            for i in range(len(x))
        ]
    }


def test_disk_full_is_507_and_recovers(forks: ForkServer, small_disk: Path) -> None:
    filler = small_disk / "filler"
    filler.write_bytes(b"\0" * (8 << 20))  # given back later: "space returns"
    data = small_disk / "data"
    server = forks.start(data)
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json={"dim": DIM}).status_code == 201
    x = np.random.default_rng(11).standard_normal((100, DIM)).astype(np.float32)
    acked, refused = 0, 0
    for b in range(200):
        r = http.put("/collections/c/points", json=batch(x, 100 * b))
        if r.status_code == 200:
            acked += 100
            continue
        assert (r.status_code, r.json()["error"]["code"]) == (507, "disk_full"), r.text
        refused += 1
        if refused == 3:
            break
    assert refused == 3 and acked >= 1000
    for method, path, body in [
        ("POST", "/collections/c/snapshots", None),
        ("PUT", "/collections/d", {"dim": 8}),
        ("POST", "/collections/c/points/delete", {"ids": [1, 2, 3]}),
    ]:
        r = http.request(method, path, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (507, "disk_full"), (path, r.text)
    assert http.post("/collections/c/points/count", json={}).json()["count"] == acked
    hit = http.post("/collections/c/search", json={"vector": x[7].tolist(), "k": 1}).json()
    assert hit["hits"][0]["id"] % 100 == 7
    filler.unlink()  # space returns
    assert http.put("/collections/c/points", json=batch(x[:10], 10**6)).status_code == 200
    assert http.post("/collections/c/snapshots").status_code == 201
    assert http.put("/collections/d", json={"dim": 8}).status_code == 201
    server.kill()
    conn = sqlite3.connect(data / "collections" / "c" / "store.sqlite")
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    server = forks.start(data)
    http = httpx.Client(base_url=server.url, timeout=60)
    stored = scroll_all(http, "c")
    assert set(stored) == set(range(acked)) | set(range(10**6, 10**6 + 10))
    assert all(p["id"] == i for i, p in stored.items())
    assert http.get("/collections").json() == {"collections": ["c", "d"]}
    server.kill()


def test_read_only_storage_is_503_and_recovers(
    app_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    client = app_client()
    assert client.put("/collections/c", json={"dim": 4}).status_code == 201
    body = {"points": [{"id": i, "vector": [1.0, i, 0, 0]} for i in range(5)]}
    assert client.put("/collections/c/points", json=body).status_code == 200

    def readonly(*args: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    def erofs(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(Store, "insert", staticmethod(readonly))
    monkeypatch.setattr(Store, "delete", staticmethod(readonly))
    monkeypatch.setattr(snapshots.shutil, "copy2", erofs)
    more = {"points": [{"id": 9, "vector": [0.0, 1, 0, 0]}]}
    for method, path, payload in [
        ("PUT", "/collections/c/points", more),
        ("POST", "/collections/c/points/delete", {"ids": [1]}),
        ("POST", "/collections/c/snapshots", None),
    ]:
        r = client.request(method, path, json=payload)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "read_only"), (path, r.text)
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 5
    monkeypatch.undo()
    assert client.put("/collections/c/points", json=more).json()["operation_id"] == 2
    assert client.post("/collections/c/snapshots").status_code == 201


# a server started on a read-only data directory ------------------------------------------------
def read_only_server(data: Path, scratch: Path) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m server serve` in a mount namespace of its own where `data` is a read-only
    bind mount (the test's view of `data` stays writable); its temp files go to `scratch`."""
    port = free_port()
    script = (
        f'mount --bind "{data}" "{data}" && mount -o remount,ro,bind "{data}" "{data}" && '
        f'exec "{sys.executable}" -m server serve --data "{data}" --port {port}'
    )
    env = {**os.environ, "TMPDIR": str(scratch), "PITH_LOG_LEVEL": "warning"}
    proc = subprocess.Popen(["unshare", "-m", "sh", "-c", script], cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        assert proc.poll() is None, "read-only server exited"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return proc, url
        time.sleep(0.05)
    raise AssertionError("read-only server not ready")


def parity_batch(x: np.ndarray, first: int) -> dict:
    body = batch(x, first)
    for p in body["points"]:
        p["payload"]["par"] = p["id"] % 2
    return body


def check_read_only(url: str, expected: dict[int, dict], x: np.ndarray) -> None:
    http = httpx.Client(base_url=url, timeout=60)
    ready = http.get("/readyz").json()
    assert ready["read_only"] is True and ready["failed"] == {}, ready
    assert scroll_all(http, "c") == expected
    flt = {"must": [{"key": "par", "match": {"value": 1}}]}
    counted = http.post("/collections/c/points/count", json={"filter": flt}).json()["count"]
    assert counted == sum(1 for p in expected.values() if p["par"] == 1)
    i = max(expected)
    hits = http.post("/collections/c/search", json={"vector": x[i % len(x)].tolist(), "k": 1})
    assert hits.json()["hits"][0]["id"] == i
    assert http.get(f"/collections/c/points/{i}").json()["payload"] == expected[i]
    for method, path, body in [
        ("PUT", "/collections/c/points", batch(x[:2], 10**6)),
        ("POST", "/collections/c/points/delete", {"ids": [1]}),
        ("POST", "/collections/c/snapshots", None),
        ("POST", "/collections/c/train", None),
        ("PUT", "/collections/d", {"dim": 8}),
        ("DELETE", "/collections/c", None),
    ]:
        r = http.request(method, path, json=body)
        assert (r.status_code, r.json()["error"]["code"]) == (503, "read_only"), (path, r.text)
    assert scroll_all(http, "c") == expected  # refused writes changed nothing


def test_server_started_read_only_serves_reads_and_refuses_writes(
    forks: ForkServer, tmp_path: Path
) -> None:
    if os.geteuid() != 0 or shutil.which("unshare") is None:
        pytest.skip("needs root and unshare for a read-only bind mount")
    data, scratch = tmp_path / "data", tmp_path / "scratch"
    scratch.mkdir()
    x = np.random.default_rng(12).standard_normal((400, DIM)).astype(np.float32)
    server = forks.start(data)
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json={"dim": DIM, "metric": "ip"}).status_code == 201
    assert http.put("/collections/c/points", json=parity_batch(x[:300], 0)).status_code == 200
    server.kill(signal.SIGTERM)  # a clean stop: the WAL is folded in and removed
    store = data / "collections" / "c" / "store.sqlite"
    assert not Path(f"{store}-wal").exists()
    expected = {i: {"id": i, "pad": "y" * 200, "par": i % 2} for i in range(300)}
    ro, url = read_only_server(data, scratch)
    check_read_only(url, expected, x)
    ro.terminate()
    assert ro.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once stopped
    assert list(scratch.iterdir()) == []  # the scratch copy of the index is gone

    server = forks.start(data)  # writes acknowledged, then kill -9: they live in the WAL only
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c/points", json=parity_batch(x[300:], 300)).status_code == 200
    server.kill()
    assert Path(f"{store}-wal").stat().st_size > 0
    expected |= {i: {"id": i, "pad": "y" * 200, "par": i % 2} for i in range(300, 400)}
    ro, url = read_only_server(data, scratch)
    check_read_only(url, expected, x)
    ro.kill()
    ro.wait(60)
