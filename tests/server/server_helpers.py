"""Helpers of the server tests: seeded vectors, request bodies, readiness, and a small
deterministic text embedder standing in for MiniLM."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from embed.minilm import TokenBatch
from server.app import create_app
from server.service.embedders import Embedders
from server.settings import Settings

FAST_PQ = {"kind": "pq", "m": 8, "nbits": 4, "iterations": 3, "opq": False, "balanced": False}


class WordEmbedder:
    """Bag of hashed words -> 384-d unit vectors: texts sharing words are close."""

    dim = 384

    def _word(self, word: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")
        return np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)

    def _tokens(self, text: str) -> np.ndarray:
        words = re.findall(r"[a-z0-9]+", text.lower()) or ["<empty>"]
        rows = np.stack([self._word(w) for w in words])
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    def encode(self, texts: list[str]) -> np.ndarray:
        out = np.stack([self._tokens(t).sum(0) for t in texts])
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)

    def encode_tokens(self, texts: list[str]) -> TokenBatch:
        parts = [self._tokens(t) for t in texts]
        offsets = np.concatenate([[0], np.cumsum([len(p) for p in parts])]).astype(np.int64)
        return TokenBatch(np.concatenate(parts).astype(np.float32), offsets)


def fake_embedders() -> Embedders:
    return Embedders({"minilm": WordEmbedder})


def wait_ready(client: TestClient, timeout_s: float = 30.0) -> None:
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.02)
    raise AssertionError("server never became ready")


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def points_body(
    x: np.ndarray, ids: list[int] | None = None, payload: Callable[[int], dict] | None = None
) -> dict:
    ids = list(range(len(x))) if ids is None else ids
    return {
        "points": [
            {"id": i, "vector": v.tolist(), "payload": payload(i) if payload else {"i": i}}
            for i, v in zip(ids, x, strict=True)
        ]
    }


@contextmanager
def app_clients(data: Path, **defaults: object) -> Iterator[Callable[..., TestClient]]:
    """make(**settings) -> a started, ready in-process TestClient on `data` (fake embedders);
    every client made is closed, newest first, on exit."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(data=data, cpu_threads=2, **{**defaults, **overrides})  # type: ignore[arg-type]
        client = TestClient(create_app(settings, embedders=fake_embedders()))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    try:
        yield make
    finally:
        for client in reversed(clients):
            client.__exit__(None, None, None)


def searches_counted(metrics_text: str, status: int) -> float:
    """pith_http_requests_total of the search route with `status`, from /metrics text."""
    route = 'route="/collections/{name}/search"'
    for line in metrics_text.splitlines():
        mine = line.startswith("pith_http_requests_total{") and route in line
        if mine and f'status="{status}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def routed(http: Any) -> dict[str, float]:
    """pith_searches_routed_total by destination, from a server's /metrics."""
    out = {}
    for line in http.get("/metrics").text.splitlines():
        if line.startswith("pith_searches_routed_total{"):
            label, value = line.split("} ")
            out[label.split('"')[1]] = float(value)
    return out


def writes_visible(writer: Any, searcher: Any, name: str, x: np.ndarray, rounds: int) -> None:
    """Each `wait=true` upsert made with `writer` (point i = x[i], payload {"i": i}) is the
    top hit of the next search made with `searcher`; every 10th round a `wait=true` delete is
    gone from the next search too."""
    at = f"/collections/{name}"
    for i in range(rounds):
        point = {"id": i, "vector": x[i].tolist(), "payload": {"i": i}}
        assert writer.put(f"{at}/points?wait=true", json={"points": [point]}).is_success
        hits = searcher.post(f"{at}/search", json={"vector": x[i].tolist(), "k": 1})
        top = hits.json()["hits"][0]
        assert top["id"] == i and top["payload"] == {"i": i} and abs(top["score"] - 1) < 2e-3
        if i % 10 == 9:
            gone = writer.post(f"{at}/points/delete?wait=true", json={"ids": [i - 5]})
            assert gone.is_success
            near = searcher.post(f"{at}/search", json={"vector": x[i - 5].tolist()})
            assert all(h["id"] != i - 5 for h in near.json()["hits"])
