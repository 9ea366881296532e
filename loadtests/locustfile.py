"""Locust workload against a running pith server: 95% searches, 5% upserts (wait=true) on
one collection; `loadtests.mixed` runs it headless and prints the figures.

Also usable on its own: `locust -f loadtests/locustfile.py --host http://127.0.0.1:8000
--headless -u 20 -r 20 -t 60s` (set PITH_LOAD_COLLECTION / PITH_LOAD_DIM / PITH_API_KEY;
PITH_LOAD_BOUNDED=1 makes the upserts replace preloaded points: the data keeps its size)."""

from __future__ import annotations

import base64
import itertools
import os
from typing import Any

import numpy as np
from locust import FastHttpUser, between, events, task
from locust.env import Environment

COLLECTION = os.environ.get("PITH_LOAD_COLLECTION", "load")
DIM = int(os.environ.get("PITH_LOAD_DIM", "64"))
PRELOAD = int(os.environ.get("PITH_LOAD_POINTS", "20000"))
BATCH = 16
QUERY_POOL = 256
_RNG = np.random.default_rng(0)
_QUERIES = _RNG.standard_normal((QUERY_POOL, DIM)).astype(np.float32).round(4).tolist()
_NEXT_ID = itertools.count(10**9, BATCH)  # upserts add new points above the preloaded ids


def _headers() -> dict[str, str]:
    key = os.environ.get("PITH_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def prepare(host: str, points: int = PRELOAD) -> None:
    """Create the collection (cosine, float16 flat) and load `points` seeded vectors."""
    import httpx

    with httpx.Client(base_url=host, timeout=300, headers=_headers()) as http:
        r = http.put(f"/collections/{COLLECTION}", json={"dim": DIM, "metric": "cosine"})
        if r.status_code == 200 and r.json()["points"] >= points:
            return
        r.raise_for_status()
        rng = np.random.default_rng(1)
        for start in range(0, points, 2000):
            n = min(2000, points - start)
            x = rng.standard_normal((n, DIM)).astype(np.float32)
            body = {
                "ids": list(range(start, start + n)),
                "vectors_b64": base64.b64encode(x.tobytes()).decode(),
                "shape": [n, DIM],
                "payloads": [{"i": start + i, "par": (start + i) % 2} for i in range(n)],
            }
            http.put(f"/collections/{COLLECTION}/points", json=body).raise_for_status()


@events.test_start.add_listener
def _on_start(environment: Environment, **_: Any) -> None:
    if environment.host:
        prepare(environment.host)


class SearchAndUpsert(FastHttpUser):
    """One client: search mostly, sometimes write a small batch."""

    wait_time = between(0, 0.002)

    def on_start(self) -> None:
        self.i = int(_RNG.integers(0, QUERY_POOL))

    @task(95)
    def search(self) -> None:
        self.i = (self.i + 1) % QUERY_POOL
        body = {"vector": _QUERIES[self.i], "k": 10, "with_payload": self.i % 4 == 0}
        if self.i % 10 == 0:
            body["filter"] = {"must": [{"key": "par", "match": {"value": 1}}]}
        self.client.post(
            f"/collections/{COLLECTION}/search", json=body, headers=_headers(), name="search"
        )

    @task(5)
    def upsert(self) -> None:
        first = next(_NEXT_ID)
        if os.environ.get("PITH_LOAD_BOUNDED"):  # soak: replace preloaded points, same size
            first = (first - 10**9) % max(BATCH, PRELOAD - BATCH)
        points = [
            {
                "id": first + j,
                "vector": _QUERIES[(first + j) % QUERY_POOL],
                "payload": {"par": j % 2},
            }
            for j in range(BATCH)
        ]
        self.client.put(
            f"/collections/{COLLECTION}/points?wait=true",
            json={"points": points},
            headers=_headers(),
            name="upsert",
        )
