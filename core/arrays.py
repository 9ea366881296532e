"""Arrays are normalised once, at the boundary: shape and dtype checked, finite, C-contiguous."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.errors import InvalidInput

MAX_ID = 2**63 - 1


def as_matrix(x: object, dim: int, name: str = "vectors", allow_empty: bool = True) -> np.ndarray:
    """A (n, dim) C-contiguous float32 matrix of finite values; a 1-D vector becomes one row."""
    try:
        arr = np.asarray(x)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: not a numeric array ({exc})") from exc
    if arr.dtype.kind not in "fiu":
        raise InvalidInput(f"{name}: expected numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2:
        raise InvalidInput(f"{name}: expected a 2-D array (n, {dim}), got shape {arr.shape}")
    if arr.shape[1] != dim:
        raise InvalidInput(f"{name}: expected dimension {dim}, got {arr.shape[1]}")
    if arr.shape[0] == 0 and not allow_empty:
        raise InvalidInput(f"{name}: empty")
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InvalidInput(f"{name}: contains NaN or infinity")
    return out


def as_ids(ids: object, n: int | None = None, name: str = "ids") -> np.ndarray:
    """A 1-D int64 array of ids in [0, 2**63 - 1), optionally of length n."""
    try:
        arr = np.asarray(ids)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"{name}: not an integer array ({exc})") from exc
    if arr.ndim != 1:
        raise InvalidInput(f"{name}: expected a 1-D array, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "iu":
        raise InvalidInput(f"{name}: expected integers, got dtype {arr.dtype}")
    if n is not None and arr.shape[0] != n:
        raise InvalidInput(f"{name}: expected {n} ids, got {arr.shape[0]}")
    if arr.size and (arr.min() < 0 or arr.max() >= MAX_ID):
        raise InvalidInput(f"{name}: ids must be in [0, 2**63 - 1)")
    return np.ascontiguousarray(arr, dtype=np.int64)


def as_multivector(x: object, dim: int, name: str = "vectors") -> np.ndarray:
    """One multi-vector document: a non-empty (tokens, dim) float32 matrix."""
    return as_matrix(x, dim, name=name, allow_empty=False)


def as_multivectors(docs: Sequence[object], dim: int, name: str = "documents") -> list[np.ndarray]:
    """Several multi-vector documents, each validated."""
    if isinstance(docs, np.ndarray) and docs.ndim == 2:
        raise InvalidInput(f"{name}: expected a list of (tokens, {dim}) matrices, got one matrix")
    return [as_multivector(d, dim, name=f"{name}[{i}]") for i, d in enumerate(docs)]


def pack_multivectors(docs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate token matrices: (all_tokens, dim) and offsets (n + 1,)."""
    lengths = np.fromiter((len(d) for d in docs), dtype=np.int64, count=len(docs))
    offsets = np.zeros(len(docs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    dim = docs[0].shape[1] if len(docs) else 0
    flat = np.concatenate(docs) if len(docs) else np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(flat, dtype=np.float32), offsets
