"""The bulk fast path: parsing 50,000 x 384 base64 floats costs less than encoding them with
the default pq encoder (m = dim / 8 sub-vectors of 256 centroids)."""

from __future__ import annotations

import base64
import time
from pathlib import Path

import numpy as np
import orjson
import pytest

from encoders import PQSpec, build_encoder
from server.bodies import parse_upsert
from server.service.registry import Service
from server.service.spec import CollectionSpec

N, DIM = 50_000, 384


def best_of(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


@pytest.mark.slow
def test_base64_parse_is_cheaper_than_pq_encoding(tmp_path: Path) -> None:
    x = np.random.default_rng(0).standard_normal((N, DIM)).astype(np.float32)
    body = orjson.dumps(
        {
            "points": [{"id": i} for i in range(N)],
            "vectors_b64": base64.b64encode(x.tobytes()).decode(),
            "dtype": "float32",
            "shape": [N, DIM],
        }
    )
    service = Service(tmp_path)
    service.open_all()
    collection, _ = service.create("c", CollectionSpec(dim=DIM, metric="ip"))
    batch = parse_upsert(body, collection)
    assert len(batch.keys) == N and batch.vectors.data.shape == (N, DIM)
    np.testing.assert_allclose(batch.vectors.data[123], x[123], rtol=1e-3, atol=1e-3)
    encoder = build_encoder(PQSpec(m=48, opq=False, iterations=2), DIM)
    encoder.fit(x[:2048])
    parse_s = best_of(lambda: parse_upsert(body, collection))
    encode_s = best_of(lambda: encoder.encode(x))
    print(f"parse {parse_s:.3f} s, pq encode {encode_s:.3f} s for {N} x {DIM}")
    assert parse_s < encode_s
    service.close_all()
