"""Id filters applied inside FAISS scans (IDSelector), not as a post-filter of k results."""

from __future__ import annotations

from typing import Any

import faiss
import numpy as np


def id_selector(allowed: np.ndarray) -> faiss.IDSelector:
    """A selector that accepts exactly the given ids (hash set with a Bloom pre-filter)."""
    return faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))


def search_parameters(params: Any, allowed: np.ndarray | None, sel: Any = None) -> Any:
    """Attach an id selector to FAISS search parameters, keeping the selector alive."""
    if sel is None and allowed is not None:
        sel = id_selector(allowed)
    if sel is not None:
        params.sel = sel
        params._pith_sel = sel  # FAISS holds a raw pointer: keep the Python object alive
    return params


def bitmap_selector(mask: np.ndarray) -> faiss.IDSelectorBitmap:
    """A selector over positions 0..n-1 that accepts positions where mask is True."""
    bits = np.packbits(mask.astype(np.uint8), bitorder="little")
    sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))
    sel._pith_bits = bits
    return sel
