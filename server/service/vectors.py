"""Point vectors inside the service: validated once, normalised for cosine, rounded to float16
(the stored form, so the live index and a rebuilt one see exactly the same numbers)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.arrays import as_matrix
from core.errors import InvalidInput

FLOAT16_MAX = 65504.0


@dataclass(frozen=True)
class Vectors:
    """n single vectors (offsets None) or n token matrices packed as rows with offsets."""

    data: np.ndarray  # (n, dim) or (total_tokens, dim) float32, C-contiguous
    offsets: np.ndarray | None = None  # (n + 1,) int64 for multi-vector points
    half: np.ndarray | None = None  # the same values as float16 (the stored form), if at hand

    def __len__(self) -> int:
        return len(self.data) if self.offsets is None else len(self.offsets) - 1

    @property
    def is_multi(self) -> bool:
        return self.offsets is not None

    def split(self) -> list[np.ndarray]:
        """One (tokens, dim) matrix per point (views, no copy)."""
        if self.offsets is None:
            return [self.data[i : i + 1] for i in range(len(self.data))]
        o = self.offsets
        return [self.data[o[i] : o[i + 1]] for i in range(len(o) - 1)]

    def take(self, positions: np.ndarray) -> Vectors:
        """The points at the given positions, in that order."""
        if self.offsets is None:
            return Vectors(np.ascontiguousarray(self.data[positions]))
        parts = self.split()
        return pack([parts[int(i)] for i in positions], self.data.shape[1])


def pack(parts: Sequence[np.ndarray], dim: int) -> Vectors:
    """Token matrices -> one packed multi-vector batch."""
    lengths = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = np.concatenate(parts) if parts else np.zeros((0, dim), np.float32)
    return Vectors(np.ascontiguousarray(data, dtype=np.float32), offsets)


def concat(batches: Sequence[Vectors], dim: int) -> Vectors:
    """Several batches of the same kind -> one."""
    if batches and batches[0].offsets is not None:
        return pack([p for b in batches for p in b.split()], dim)
    data = [b.data for b in batches]
    return Vectors(np.concatenate(data) if data else np.zeros((0, dim), np.float32))


def prepare(
    data: object, dim: int, offsets: object | None, normalise: bool, name: str = "vectors"
) -> Vectors:
    """Validate (shape, finite, float16 range, non-empty token sets), normalise, round."""
    x = as_matrix(data, dim, name=name)
    offs = None if offsets is None else check_offsets(offsets, len(x), name)
    if normalise:
        x = unit_rows(x, name)
    exact = isinstance(data, np.ndarray) and data.dtype == np.float16 and not normalise
    with np.errstate(over="ignore"):  # overflow is detected just below
        half = np.ascontiguousarray(data).reshape(x.shape) if exact else to_half(x)
    if not np.isfinite(half).all():  # as_matrix saw finite floats: these overflowed float16
        raise InvalidInput(f"{name}: values beyond the float16 range (|x| > {FLOAT16_MAX:g})")
    return Vectors(half.astype(np.float32), offs, half)


TORCH_HALF_MIN = 1 << 16  # values; below this numpy's call overhead is the smaller one


def to_half(x: np.ndarray) -> np.ndarray:
    """float32 -> float16 (round to nearest even; inf past the range), through torch's
    vectorised conversion on large batches (about twice as fast as numpy's there)."""
    if x.size < TORCH_HALF_MIN:
        return np.asarray(x, dtype=np.float32).astype(np.float16)
    import torch  # only for large batches (and already loaded by the encoders that train)

    with warnings.catch_warnings():  # read-only input (a request buffer): torch only reads it
        warnings.simplefilter("ignore", UserWarning)
        src = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    return src.to(torch.float16).numpy()


def check_offsets(offsets: object, rows: int, name: str) -> np.ndarray:
    """Offsets of packed token matrices: 0, strictly increasing (no empty set), ending at rows."""
    offs = np.asarray(offsets)
    if offs.ndim != 1 or offs.dtype.kind not in "iu" or len(offs) < 1:
        raise InvalidInput(f"{name}: offsets must be a 1-D integer array")
    offs = offs.astype(np.int64)
    if offs[0] != 0 or offs[-1] != rows:
        raise InvalidInput(f"{name}: offsets must start at 0 and end at {rows}")
    if (np.diff(offs) < 1).any():
        raise InvalidInput(f"{name}: empty multi-vector (a point needs at least one vector)")
    return offs


def unit_rows(x: np.ndarray, name: str) -> np.ndarray:
    """Rows scaled to unit L2 norm (cosine); a zero row has no direction and is refused."""
    squares = np.einsum("ij,ij->i", x, x)
    if not np.isfinite(squares).all():  # float32 squares overflowed: redo them in float64
        squares = np.einsum("ij,ij->i", x, x, dtype=np.float64)
    if x.size and float(squares.min()) == 0.0:
        raise InvalidInput(f"{name}: a zero vector has no cosine direction")
    return x * (1.0 / np.sqrt(squares)).astype(np.float32)[:, None]


def to_blobs(vectors: Vectors) -> list[bytes]:
    """One float16 little-endian blob per point (a row, or a token matrix)."""
    half = vectors.half if vectors.half is not None else vectors.data.astype("<f2")
    if vectors.offsets is None:
        return [row.tobytes() for row in half]
    o = vectors.offsets
    return [half[o[i] : o[i + 1]].tobytes() for i in range(len(o) - 1)]


def from_blobs(blobs: Sequence[bytes], dim: int, multi: bool) -> Vectors:
    """Blobs written by `to_blobs` -> float32 vectors."""
    joined = np.frombuffer(b"".join(blobs), dtype="<f2").reshape(-1, dim).astype(np.float32)
    if not multi:
        return Vectors(joined)
    lengths = np.fromiter((len(b) // (2 * dim) for b in blobs), dtype=np.int64, count=len(blobs))
    offsets = np.zeros(len(blobs) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return Vectors(joined, offsets)
