"""Text embedders, loaded lazily and once per `Embedders` object (one per service)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from core.errors import InvalidSpec


def _minilm() -> Any:
    from embed import MiniLM

    return MiniLM()


DEFAULT_FACTORIES: dict[str, Callable[[], Any]] = {"minilm": _minilm}


class Embedders:
    """Named embedders ("minilm"), each built on first use by its factory; thread-safe.
    An embedder has `encode(texts) -> (n, dim)` and `encode_tokens(texts) -> TokenBatch`."""

    def __init__(self, factories: dict[str, Callable[[], Any]] | None = None) -> None:
        self._factories = dict(DEFAULT_FACTORIES if factories is None else factories)
        self._lock = threading.Lock()
        self._loaded: dict[str, Any] = {}

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._loaded:
                factory = self._factories.get(name)
                if factory is None:
                    raise InvalidSpec(f"unknown embedder {name!r}")
                self._loaded[name] = factory()
            return self._loaded[name]

    def pooled(self, name: str, texts: list[str]) -> np.ndarray:
        """(n, dim) normalised sentence vectors."""
        return np.asarray(self.get(name).encode(texts), dtype=np.float32)

    def tokens(self, name: str, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Token vectors of each text, packed: (rows, dim) and offsets (n + 1,)."""
        batch = self.get(name).encode_tokens(texts)
        return np.asarray(batch.vectors, dtype=np.float32), np.asarray(batch.offsets, np.int64)
