"""End to end: a real `python -m server serve` subprocess on a free port, driven over HTTP,
killed with SIGKILL in the middle of acknowledged writes (and of training), restarted, and
checked: every acknowledged write is there, nothing unacknowledged-and-unsent appears, no id
twice, payloads intact, the index agrees with the store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from server_helpers import FAST_PQ, unit_rows

DIM = 16
ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(self, data: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--data",
            str(data),
            "--port",
            str(self.port),
        ]
        full_env = {**os.environ, "PITH_CPU_THREADS": "2", "PITH_LOG_LEVEL": "warning", **env}
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=full_env)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.proc.poll() is None, "server exited"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready")

    def stop(self, sig: int) -> None:
        self.proc.send_signal(sig)
        self.proc.wait(60)


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return tmp_path / "data"


def test_kill_9_during_acknowledged_writes_loses_nothing(data: Path) -> None:
    server = Server(data)
    spec = {
        "dim": DIM,
        "metric": "cosine",
        "encoder": FAST_PQ | {"m": 4},
        "index": {"kind": "flat", "rerank": {"enabled": True, "oversample": 20}},
        "train_size": 300,
    }
    http = httpx.Client(base_url=server.url, timeout=30)
    assert http.put("/collections/c", json=spec).status_code == 201
    x = unit_rows(20_000, DIM, seed=1)
    acked: dict[int, int] = {}  # id -> round of its last acknowledged write
    sent: dict[int, set[int]] = {}  # id -> rounds ever sent
    deleted_acked: set[int] = set()
    lock, stop = threading.Lock(), threading.Event()

    def upserts(first: int, wait: bool, replace: bool) -> None:
        client = httpx.Client(base_url=server.url, timeout=30)
        for r in range(10_000):
            if stop.is_set():
                return
            ids = (
                list(range(first, first + 10))
                if replace
                else list(range(first + 20 * r, first + 20 * (r + 1)))
            )
            body = {
                "points": [
                    {"id": i, "vector": x[i % 20_000].tolist(), "payload": {"id": i, "round": r}}
                    for i in ids
                ]
            }
            with lock:
                for i in ids:
                    sent.setdefault(i, set()).add(r)
            try:
                resp = client.put("/collections/c/points", params={"wait": wait}, json=body)
            except httpx.HTTPError:
                return
            if resp.status_code == 200:
                with lock:
                    acked.update({i: r for i in ids})

    def deletes() -> None:
        client = httpx.Client(base_url=server.url, timeout=30)
        while not stop.is_set():
            with lock:
                victims = [
                    i
                    for i in list(acked)[:40]
                    if i < 100_000 and i % 5 == 0 and i not in deleted_acked
                ][:5]
            if victims:
                try:
                    resp = client.post("/collections/c/points/delete", json={"ids": victims})
                except httpx.HTTPError:
                    return
                if resp.status_code == 200:
                    with lock:
                        deleted_acked.update(victims)
            time.sleep(0.02)

    threads = [
        threading.Thread(target=upserts, args=(0, True, False)),
        threading.Thread(target=upserts, args=(200_000, False, False)),
        threading.Thread(target=upserts, args=(500_000, True, True)),
        threading.Thread(target=deletes),
    ]
    for t in threads:
        t.start()
    deadline = time.time() + 90
    while len(acked) < 1000 and time.time() < deadline:
        time.sleep(0.05)
    server.proc.kill()  # SIGKILL while requests are in flight
    server.proc.wait(30)
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 1000

    server = Server(data)
    http = httpx.Client(base_url=server.url, timeout=30)
    stored: dict[int, dict] = {}
    cursor = None
    while True:
        page = http.post(
            "/collections/c/points/scroll", json={"limit": 1000, "cursor": cursor}
        ).json()
        for p in page["points"]:
            assert p["id"] not in stored, "duplicate id"
            stored[p["id"]] = p["payload"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    for i, r in acked.items():
        if i in deleted_acked:
            continue
        assert i in stored, f"acknowledged id {i} lost"
        assert stored[i]["id"] == i and stored[i]["round"] >= r and stored[i]["round"] in sent[i]
    assert not (deleted_acked & set(stored)), "acknowledged delete undone"
    assert set(stored) <= set(sent), "phantom ids"
    info = http.get("/collections/c").json()
    assert info["points"] == len(stored) == info["indexed_points"]
    probe = next(i for i in stored if i < 100_000)
    query = {"vector": x[probe].tolist(), "k": 5}  # ids p, 200000+p, 500000+p share a vector
    hits = http.post("/collections/c/search", json=query).json()["hits"]
    assert probe in [h["id"] for h in hits]
    # graceful stop checkpoints: the next start replays nothing and serves the same data
    server.stop(signal.SIGTERM)
    assert server.proc.returncode in (0, -signal.SIGTERM)  # uvicorn re-raises the signal
    server = Server(data)
    http = httpx.Client(base_url=server.url, timeout=30)
    again = http.get("/collections/c").json()
    assert again["points"] == len(stored) and again["checkpoint_seq"] == again["applied_seq"]
    server.stop(signal.SIGKILL)
