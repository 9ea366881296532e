"""Disk bytes per point of a pith collection, by file, measured on a small seeded run (the
1-billion-vector plan in deploy/README.md scales these numbers):

    .venv/bin/python deploy/bytes_per_vector.py --points 20000 --dim 384
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pybase64
from fastapi.testclient import TestClient

from server.app import create_app
from server.settings import Settings

PQ = {"kind": "pq", "m": 64, "nbits": 8, "iterations": 4, "opq": False, "balanced": False}


def fill(client: TestClient, points: int, dim: int, batch: int = 2000) -> None:
    """`points` seeded random vectors with a small payload each, then wait for training."""
    spec = {
        "dim": dim,
        "metric": "cosine",
        "encoder": PQ,
        "index": {"kind": "flat", "rerank": {"enabled": True}},
        "train_size": points // 2,
    }
    assert client.put("/collections/docs", json=spec).status_code == 201
    x = np.random.default_rng(0).standard_normal((points, dim)).astype(np.float32)
    for start in range(0, points, batch):
        rows = x[start : start + batch]
        body = {
            "ids": list(range(start, start + len(rows))),
            "vectors_b64": pybase64.b64encode(rows.tobytes()).decode(),
            "dtype": "float32",
            "shape": list(rows.shape),
            "payloads": [{"i": i} for i in range(start, start + len(rows))],
        }
        assert client.put("/collections/docs/points", json=body).status_code == 200
    trained = client.post("/collections/docs/train?wait=true")
    assert trained.status_code == 200, trained.text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        options = {"data": Path(tmp), "cpu_threads": 2, "checkpoint_every_points": 1000}
        settings = Settings.model_validate(options)
        with TestClient(create_app(settings)) as client:
            while client.get("/readyz").status_code != 200:
                time.sleep(0.1)
            fill(client, args.points, args.dim)
            info = client.get("/collections/docs").json()
    n = info["points"]
    print(f"{n} points, dim {args.dim}, encoder pq m=64 nbits=8, trained {info['training']}")
    for key in ("bytes_in_ram", "index_bytes_on_disk", "store_bytes_on_disk", "bytes_on_disk"):
        print(f"  {key:<20} {info[key] / n:8.1f} B/point")


if __name__ == "__main__":
    main()
