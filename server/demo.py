"""The demo collection: a seeded sample of WordNet glosses, embedded with MiniLM, searchable
by text (`pith serve --demo` creates it once)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from server.service.ids import id_key
from server.service.registry import Service
from server.service.spec import CollectionSpec

log = logging.getLogger("pith.demo")
NAME = "wordnet"
BATCH = 256
SPEC = {
    "dim": 384,
    "metric": "cosine",
    "embedder": "minilm",
    "encoder": {"kind": "pq", "m": 96, "nbits": 4},
    "index": {"kind": "flat", "rerank": {"enabled": True, "oversample": 10}},
    "train_size": 2000,
}


def ensure_demo(service: Service, size: int, seed: int) -> None:
    """Create and fill the demo collection unless it exists (training follows by itself)."""
    if NAME in service.names():
        return
    from bench.datasets.wordnet_text import read_synsets

    synsets = read_synsets()
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(synsets), size=min(size, len(synsets)), replace=False))
    collection, _ = service.create(NAME, CollectionSpec.model_validate(SPEC))
    log.info("demo: embedding %d WordNet glosses into %r", len(picked), NAME)
    for start in range(0, len(picked), BATCH):
        chosen = [int(i) for i in picked[start : start + BATCH]]
        texts = [synsets[i].text for i in chosen]
        payloads: list[dict[str, Any] | None] = [_payload(synsets[i]) for i in chosen]
        vectors = collection.embed(texts)
        collection.upsert([id_key(i) for i in chosen], vectors, payloads, wait=True).result()
    log.info("demo: %r ready", NAME)


def _payload(synset: Any) -> dict[str, Any]:
    return {
        "lemmas": list(synset.lemmas),
        "definition": synset.definition,
        "pos": synset.key.split(":", 1)[0],
    }
