"""The compiled kernels (`kernels/native.c`, built by setup.py), when the install built them.

The extension is optional: where no C compiler was present at install time `available()` is
False and callers take their numpy or FAISS path instead.
"""

from __future__ import annotations

from types import ModuleType

import numpy as np

_native: ModuleType | None
try:
    from kernels import _native as _built

    _native = _built
except ImportError:  # installed without a C compiler
    _native = None


def available() -> bool:
    """Whether the compiled kernels were built and import."""
    return _native is not None


def simd() -> str:
    """The instruction set of the compiled scoring loop ('avx2+f16c', 'portable'), or 'none'."""
    return _native.simd() if _native is not None else "none"


def rerank_f16(
    xq: np.ndarray,
    cand_ids: np.ndarray,
    cand_rows: np.ndarray,
    vectors: np.ndarray,
    k: int,
    metric: str,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k of each query's candidates by exact score against float16 rows, best first.

    Same contract as `kernels.rerank.rerank`: candidates with row -1 are dropped, missing
    results are (-inf, -1) for ip and (+inf, -1) for l2, whose scores are squared distances.
    """
    assert _native is not None, "kernels._native is not built"
    if vectors.dtype != np.float16 or not vectors.flags.c_contiguous:
        raise TypeError("rerank_f16 needs C-contiguous float16 vectors")
    q = np.ascontiguousarray(xq, dtype=np.float32)
    rows = np.ascontiguousarray(cand_rows, dtype=np.int64)
    ids = np.ascontiguousarray(cand_ids, dtype=np.int64)
    (nq, c), (n, d) = rows.shape, vectors.shape
    if ids.shape != rows.shape:
        raise ValueError(f"rerank_f16: ids {ids.shape} and rows {rows.shape} differ")
    scores = np.empty((nq, k), np.float32)
    best = np.empty((nq, k), np.int64)
    _native.rerank_f16(q, vectors, rows, ids, scores, best, nq, d, n, c, k, metric == "l2")
    return scores, best
