"""Exhaustive scan over codes: exact for float encoders, ADC tables for PQ, SDC for binary."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from encoders.base import Encoder
from index.base import Index
from index.codecs import add_codes, encoder_bytes, flat_index, is_float, vector_bytes
from index.filters import search_parameters
from index.ivf import ivf_bytes, unshared_encoder_bytes
from index.spec import FlatSpec, SearchParams


class FlatIndex(Index):
    """Every code scanned; 8 bytes of id per vector."""

    def __init__(self, encoder: Encoder, spec: FlatSpec, folder: Path | None = None) -> None:
        super().__init__(encoder, spec, folder)
        self.faiss: faiss.Index | None = None
        if encoder.is_trained:
            self.faiss = flat_index(encoder, self.metric)

    @property
    def ntotal(self) -> int:
        return int(self.faiss.ntotal) if self.faiss is not None else 0

    @property
    def is_trained(self) -> bool:
        return self.faiss is not None

    def train(self, x: np.ndarray) -> None:
        self.encoder.fit(x)
        self.faiss = flat_index(self.encoder, self.metric)

    def _add(self, ids: np.ndarray, x: np.ndarray) -> None:
        assert self.faiss is not None
        add_codes(self.faiss, self.encoder, ids, x)

    def _remove(self, ids: np.ndarray) -> int:
        assert self.faiss is not None
        return int(self.faiss.remove_ids(faiss.IDSelectorBatch(ids)))

    def _candidates(
        self, xq: np.ndarray, k: int, params: SearchParams, allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]:
        assert self.faiss is not None
        base = faiss.SearchParameters() if is_float(self.encoder) else faiss.SearchParametersIVF()
        sp = search_parameters(base, allowed) if allowed is not None else None
        return self.faiss.search(self.encoder.query_view(xq), k, params=sp)

    def _structure_bytes(self) -> int:
        if self.faiss is None:
            return encoder_bytes(self.encoder)
        if isinstance(self.faiss, faiss.IndexIVF):
            return ivf_bytes(self.faiss) + unshared_encoder_bytes(self.encoder)
        inner = faiss.downcast_index(self.faiss.index)
        return vector_bytes(inner.codes) + vector_bytes(self.faiss.id_map)
