"""Shared pieces of the reliability tests: servers forked from a warm fork server (see
forkserver.py), an HTTP client that records what was acknowledged, and the checks run after
every restart (nothing acknowledged lost, no phantoms, no duplicates, payloads intact,
count == scroll, recall against exact search)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from test_e2e import free_port

ROOT = Path(__file__).resolve().parents[2]
FORKSERVER = Path(__file__).with_name("forkserver.py")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class Forked:
    """One pith server process forked by the fork server."""

    def __init__(self, pid: int, port: int) -> None:
        self.pid = pid
        self.url = f"http://127.0.0.1:{port}"

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert _alive(self.pid), "server exited"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.02)
        raise AssertionError("server not ready")

    def kill(self, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> None:
        """Send `sig` and wait until the process is gone (reaped by the fork server)."""
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.time() + timeout_s
        while _alive(self.pid):
            assert time.time() < deadline, f"pid {self.pid} survived signal {sig}"
            time.sleep(0.005)


class ForkServer:
    """Starts servers in ~0.1 s each: the fork server imported pith once."""

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OPENBLAS_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(
            [sys.executable, str(FORKSERVER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            cwd=ROOT,
            env=env,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        self._lock = threading.Lock()

    def start(
        self, data: Path, ready: bool = True, log_file: Path | None = None, **settings: Any
    ) -> Forked:
        port = free_port()
        settings = {
            "data": str(data),
            "port": port,
            "cpu_threads": 2,
            "search_threads": 1,
            "log_level": "error",
            **settings,
        }
        log = None if log_file is None else str(log_file)
        request = json.dumps({"settings": settings, "log_file": log})
        with self._lock:
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.write(request + "\n")
            self.proc.stdin.flush()
            pid = int(self.proc.stdout.readline())
        server = Forked(pid, port)
        if ready:
            server.wait_ready()
        return server

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(30)


# the model of what a client was told --------------------------------------------------------
@dataclass
class Ledger:
    """Every write sent and every write acknowledged, as the client saw them."""

    sent: dict[int, set[int]] = field(default_factory=dict)  # id -> rounds ever sent
    acked: dict[int, int] = field(default_factory=dict)  # id -> round of last acked upsert
    deleted: set[int] = field(default_factory=set)  # acknowledged deletes
    maybe_deleted: set[int] = field(default_factory=set)  # deletes sent, not acknowledged
    round: int = 0  # one increasing counter over every upsert batch of every cycle
    lock: threading.Lock = field(default_factory=threading.Lock)

    def adopt(self, stored: dict[int, dict]) -> None:
        """After a verified restart the stored state is the truth for in-flight writes."""
        with self.lock:
            self.acked = {i: p["round"] for i, p in stored.items()}
            self.deleted |= self.maybe_deleted - set(stored)
            self.maybe_deleted = set()


def scroll_all(http: httpx.Client, name: str, flt: dict | None = None) -> dict[int, dict]:
    """id -> payload of every point (asserts no id appears twice)."""
    stored: dict[int, dict] = {}
    cursor = None
    while True:
        body: dict[str, Any] = {"limit": 1000, "cursor": cursor}
        if flt is not None:
            body["filter"] = flt
        r = http.post(f"/collections/{name}/points/scroll", json=body)
        assert r.status_code == 200, r.text
        page = r.json()
        for p in page["points"]:
            assert p["id"] not in stored, f"duplicate id {p['id']}"
            stored[p["id"]] = p["payload"]
        cursor = page["next_cursor"]
        if cursor is None:
            return stored


def check_against_ledger(stored: dict[int, dict], ledger: Ledger) -> int:
    """Nothing acknowledged lost or stale, no phantoms, payloads intact; returns losses."""
    lost = [i for i in ledger.acked if i not in ledger.deleted | ledger.maybe_deleted]
    lost = [i for i in lost if i not in stored]
    assert not lost, f"acknowledged ids lost: {sorted(lost)[:20]}"
    for i, r in ledger.acked.items():
        if i in stored:
            p = stored[i]
            assert p["id"] == i and p["round"] in ledger.sent[i], f"payload of {i}: {p}"
            assert p["round"] >= r, f"id {i}: acknowledged round {r}, stored {p['round']}"
    back = ledger.deleted & set(stored)
    assert not back, f"acknowledged deletes undone: {sorted(back)[:20]}"
    phantoms = set(stored) - set(ledger.sent)
    assert not phantoms, f"phantom ids: {sorted(phantoms)[:20]}"
    return len(lost)


def check_counts(http: httpx.Client, name: str, filters: list[dict]) -> None:
    """count(filter) == len(scroll(filter)) and the index holds every stored point."""
    for flt in filters:
        count = http.post(f"/collections/{name}/points/count", json={"filter": flt}).json()
        assert count["count"] == len(scroll_all(http, name, flt)), flt
    info = http.get(f"/collections/{name}").json()
    assert info["points"] == info["indexed_points"], info


def recall_at_10(http: httpx.Client, name: str, x: np.ndarray, ids: list[int], seed: int) -> float:
    """Server top-10 against exact inner-product top-10 over the stored points (tie-aware:
    a hit scoring at least the exact 10th score counts); every hit's score must be its
    stored vector's exact score (ids and vectors of the index and the store agree)."""
    rng = np.random.default_rng(seed)
    base = np.array(sorted(ids), dtype=np.int64)
    xb = x[base % len(x)]
    queries = rng.standard_normal((10, x.shape[1])).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    body = {"searches": [{"vector": q.tolist(), "k": 10, "with_payload": False} for q in queries]}
    r = http.post(f"/collections/{name}/search/batch", json=body)
    assert r.status_code == 200, r.text
    found = 0
    for q, result in zip(queries, r.json()["results"], strict=True):
        hits = result["hits"]
        scores = xb @ q
        tenth = np.sort(scores)[-min(10, len(scores))]
        by_id = dict(zip(base.tolist(), scores.tolist(), strict=True))
        for h in hits:  # re-ranked scores are the stored vectors': the index agrees with the store
            assert abs(h["score"] - by_id[h["id"]]) < 1e-2, (h, by_id.get(h["id"]))
        found += sum(1 for h in hits if by_id[h["id"]] >= tenth - 1e-3)
    return found / (10 * len(queries))
