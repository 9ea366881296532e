"""Helpers of the client tests: seeded data and a tie-aware comparison of results."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pith_client.models import CollectionInfo, Hit, Point

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "python"
FAST_PQ = {"kind": "pq", "m": 4, "nbits": 4, "iterations": 3, "opq": False, "balanced": False}


def rows(n: int, dim: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)


def mixed_ids(n: int, seed: int, uuids: int = 10) -> list[int | str]:
    """The first `uuids` ids are (seeded) UUID strings, the rest integers."""
    rng = np.random.default_rng(seed)
    made = [str(uuid.UUID(int=int(rng.integers(1, 2**62)) << 40)) for _ in range(uuids)]
    return [*made, *range(1000, 1000 + n - uuids)]


def payload(i: int) -> dict[str, Any]:
    return {"i": i, "group": i % 5, "tag": ["red", "blue"][i % 2], "w": round(i * 0.37, 2)}


def same_hits(a: list[Hit], b: list[Hit], tol: float = 1e-4) -> None:
    """Equal up to ties: same scores; ids may differ only among points tied at the k-th score."""
    assert len(a) == len(b), (a, b)
    np.testing.assert_allclose([h.score for h in a], [h.score for h in b], rtol=1e-5, atol=tol)
    if not a:
        return
    edge = a[-1].score
    firm_a = {h.id for h in a if abs(h.score - edge) > tol}
    firm_b = {h.id for h in b if abs(h.score - edge) > tol}
    assert firm_a == firm_b
    by_id = {h.id: h for h in b}
    for hit in a:
        other = by_id.get(hit.id)
        if other is None:
            continue
        assert hit.payload == other.payload
        assert (hit.vector is None) == (other.vector is None)
        if hit.vector is not None:
            np.testing.assert_allclose(hit.vector, other.vector, atol=1e-6)


def assert_same(a: Any, b: Any) -> None:
    """Results of the same call on two clients agree (hits tie-aware, vectors numerically)."""
    if (isinstance(a, list) and a and isinstance(a[0], Hit)) or a == [] == b:
        same_hits(a, b)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    elif isinstance(a, Point):
        assert (a.id, a.version, a.payload) == (b.id, b.version, b.payload)
        assert (a.vector is None) == (b.vector is None)
        if a.vector is not None:
            np.testing.assert_allclose(a.vector, b.vector, atol=1e-6)
    elif isinstance(a, CollectionInfo):
        assert (a.name, a.spec, a.points, a.indexed_points) == (
            b.name,
            b.spec,
            b.points,
            b.indexed_points,
        )
        assert a.training["state"] == b.training["state"]
    else:
        assert a == b


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A pith server subprocess on 127.0.0.1 and a free port."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "server", "serve", "--data", str(data)]
        cmd += ["--port", str(self.port)]
        env = {**os.environ, "PITH_CPU_THREADS": "2", "PITH_LOG_LEVEL": "warning"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(CLIENT_SRC)])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
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

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
