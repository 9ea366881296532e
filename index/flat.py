"""Exhaustive scan over codes: exact for float encoders, ADC tables for PQ, SDC for binary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

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

    def _add(self, labels: np.ndarray, x: np.ndarray) -> None:
        add_codes(self._base_index(), self.encoder, labels, x)

    def _remove(self, labels: np.ndarray) -> int:
        return int(self._base_index().remove_ids(faiss.IDSelectorBatch(labels)))

    def _base_index(self) -> faiss.Index:
        assert self.faiss is not None
        return self.faiss

    def _base_params(self, params: SearchParams, allowed: np.ndarray | None) -> Any:
        base = faiss.SearchParameters() if is_float(self.encoder) else faiss.SearchParametersIVF()
        return search_parameters(base, allowed)

    def _structure_bytes(self) -> int:
        if self.faiss is None:
            return encoder_bytes(self.encoder)
        if isinstance(self.faiss, faiss.IndexIVF):
            return ivf_bytes(self.faiss) + unshared_encoder_bytes(self.encoder)
        inner = faiss.downcast_index(self.faiss.index)
        return vector_bytes(inner.codes) + vector_bytes(self.faiss.id_map)
