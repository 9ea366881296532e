"""pith configurations as benchmark builders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import Builder, Built, K
from index import Index, SearchParams, build_index


def pith(
    encoder: dict[str, Any], index: dict[str, Any], params: SearchParams | None = None
) -> Builder:
    """Build a pith index (train, add ids 0..n-1) and search it with `params`."""

    def build(xb: np.ndarray, folder: Path) -> Built:
        idx = trained_index(encoder, index, xb, folder)
        n = len(xb)

        def search(q: np.ndarray) -> np.ndarray:
            return idx.search(q, K, params).ids

        return Built(search, idx.bytes_in_ram() / n, idx.bytes_on_disk() / n)

    return build


def trained_index(
    encoder: dict[str, Any], index: dict[str, Any], xb: np.ndarray, folder: Path
) -> Index:
    """A pith index trained on xb and holding it under ids 0..n-1."""
    idx = build_index(encoder, index, xb.shape[1], folder=folder)
    idx.train(xb)
    idx.add(np.arange(len(xb)), xb)
    return idx


def binary_allocated_configs() -> list[tuple[str, bool, Builder]]:
    """The binary encoder's allocated variant (PCA + per-component bit allocation + learned
    level tables) at u=1..4, SDC, no re-rank: rows to sit next to the BEBR binary rows."""
    flat = {"kind": "flat"}
    return [
        (
            f"pith binary u={bits} allocated (SDC)",
            False,
            pith({"kind": "binary", "bits": bits, "method": "allocated"}, flat),
        )
        for bits in (1, 2, 3, 4)
    ]
