"""Batched MUVERA fixed-dimensional encodings (FDEs) in numpy: the hot loop of the encoder.

Semantics of google/graph-mining `fixed_dimensional_encoding.cc`, per repetition r:
- sketch bits: signs of the token's SimHash projections, in order;
- partition index: `AppendToGrayCode(g, bit) = (g << 1) + (bit ^ (g & 1))` over the bits, i.e.
  the index is the prefix-XOR of the bits, and the bits come back as `p ^ (p >> 1)`;
- queries: SUM of projected tokens per partition; documents: AVERAGE, and with fill_empty an
  empty partition takes the projected token whose sketch bits are nearest in Hamming distance
  to the bits of the partition (first such token on ties);
- layout: repetition-major, then partition, then projected dimension.

Everything here takes plain arrays (tokens concatenated, offsets per point cloud), processes
them in chunks of whole point clouds, and uses one matmul per chunk for all repetitions.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from kernels import dispatch

_CHUNK_ELEMENTS = 1 << 22  # bound on tokens x repetitions x projected dims per chunk


@dataclass(frozen=True)
class FdeMatrices:
    """The random matrices of an FDE, repetition-major columns."""

    simhash: np.ndarray  # (dim, r_reps * k_sim) float32, iid N(0, 1)
    projection: np.ndarray | None  # (dim, r_reps * d_proj) float32 AMS sketch; None = identity
    r_reps: int
    k_sim: int

    @property
    def dim(self) -> int:
        return int(self.simhash.shape[0])

    @property
    def d_proj(self) -> int:
        if self.projection is None:
            return self.dim
        return int(self.projection.shape[1]) // self.r_reps

    @property
    def n_partitions(self) -> int:
        return 1 << self.k_sim

    @property
    def fde_dim(self) -> int:
        return self.r_reps * self.n_partitions * self.d_proj


def gray_partition(bits: np.ndarray) -> np.ndarray:
    """Partition index of sketch bits (..., k_sim), appended in order as a Gray code."""
    g = np.zeros(bits.shape[:-1], dtype=np.int64)
    for j in range(bits.shape[-1]):
        g = (g << 1) + (bits[..., j].astype(np.int64) ^ (g & 1))
    return g


def partition_bits(partition: np.ndarray | int) -> np.ndarray:
    """Sketch bits a partition stands for, as an integer whose MSB is the first sketch bit."""
    p = np.asarray(partition, dtype=np.int64)
    return p ^ (p >> 1)


def chunk_bounds(offsets: np.ndarray, width: int) -> list[tuple[int, int]]:
    """Runs of whole point clouds whose tokens x width stay near the chunk budget."""
    max_tokens = max(1, _CHUNK_ELEMENTS // max(width, 1))
    bounds = []
    n = len(offsets) - 1
    start = 0
    while start < n:
        end = int(np.searchsorted(offsets, offsets[start] + max_tokens, side="right")) - 1
        end = min(max(end, start + 1), n)
        bounds.append((start, end))
        start = end
    return bounds


def fde_batch(
    tokens: np.ndarray,
    offsets: np.ndarray,
    mats: FdeMatrices,
    is_query: bool,
    fill_empty: bool,
) -> np.ndarray:
    """FDEs (n, fde_dim) float32 of the point clouds tokens[offsets[i]:offsets[i + 1]]
    (on the torch path when `kernels.dispatch` chooses it)."""
    if dispatch.backend() == "torch":
        from kernels import torch_fde

        return torch_fde.fde_batch(tokens, offsets, mats, is_query, fill_empty, dispatch.device())
    n = len(offsets) - 1
    out = np.empty((n, mats.fde_dim), dtype=np.float32)
    for start, end in chunk_bounds(offsets, mats.r_reps * mats.d_proj):
        lo, hi = int(offsets[start]), int(offsets[end])
        x = np.ascontiguousarray(tokens[lo:hi], dtype=np.float32)
        out[start:end] = _fde_chunk(x, offsets[start : end + 1] - lo, mats, is_query, fill_empty)
    return out


def _fde_chunk(
    x: np.ndarray, offsets: np.ndarray, mats: FdeMatrices, is_query: bool, fill_empty: bool
) -> np.ndarray:
    """FDEs of the point clouds of one chunk (offsets start at 0)."""
    n, r, p = len(offsets) - 1, mats.r_reps, mats.n_partitions
    bits = (x @ mats.simhash).reshape(len(x), r, mats.k_sim) > 0
    cloud = np.repeat(np.arange(n), np.diff(offsets))
    # cell of (token, rep): (cloud, rep, partition), flattened; token-major like proj's rows
    cell = ((cloud[:, None] * r + np.arange(r)) * p + gray_partition(bits)).ravel()
    proj = project(x, mats).reshape(len(cell), -1)  # row t * r + rep
    order = np.argsort(cell, kind="stable")
    sorted_cells = cell[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    used = sorted_cells[starts]
    fde = np.zeros((n * r * p, proj.shape[1]), dtype=np.float32)
    fde[used] = np.add.reduceat(proj[order], starts, axis=0)
    if not is_query:
        fde[used] /= np.diff(np.r_[starts, len(cell)])[:, None]
        if fill_empty and mats.k_sim > 0:
            first = np.full(n * r * p, -1, dtype=np.int64)
            first[used] = order[starts]  # stable sort: the first token of each cell
            fill_empty_cells(fde, first, proj, mats.k_sim)
    return fde.reshape(n, -1)


def project(x: np.ndarray, mats: FdeMatrices) -> np.ndarray:
    """Tokens in each repetition's projected space (tokens, r_reps, d_proj)."""
    if mats.projection is None:
        return np.broadcast_to(x[:, None, :], (len(x), mats.r_reps, x.shape[1]))
    return (x @ mats.projection).reshape(len(x), mats.r_reps, -1)


@functools.cache
def bit_masks(k: int, weight: int) -> np.ndarray:
    """All k-bit integers with `weight` bits set, ascending."""
    values = np.arange(1 << k, dtype=np.int64)
    return values[popcount(values) == weight]


def popcount(values: np.ndarray) -> np.ndarray:
    """Set bits of each non-negative int64 (np.bitwise_count exists from numpy 2.0 only)."""
    if hasattr(np, "bitwise_count"):
        return np.asarray(np.bitwise_count(values))
    as_bytes = np.ascontiguousarray(values, dtype="<i8").view(np.uint8).reshape(-1, 8)
    return np.unpackbits(as_bytes, axis=1).sum(axis=1).reshape(np.shape(values))


def fill_empty_cells(fde: np.ndarray, first: np.ndarray, proj: np.ndarray, k: int) -> None:
    """In place: each empty cell of fde (clouds * reps * 2**k, d) takes the projected token of
    its cloud whose sketch bits are nearest to the partition's bits, the first one on ties.

    first[c] is the row (token * reps + rep) in proj of cell c's first token, -1 when empty.
    A cell's tokens all share the cell's bits, so the nearest token is the first token of the
    nearest non-empty cell: search Hamming spheres of radius 1, 2, ... around the empty ones.
    """
    p = 1 << k
    empty = np.flatnonzero(first < 0)
    base = empty - empty % p  # first cell of the same (cloud, rep)
    target = partition_bits(empty % p)
    to_partition = np.empty(p, dtype=np.int64)
    to_partition[partition_bits(np.arange(p))] = np.arange(p)
    best = np.full(len(empty), -1, dtype=np.int64)
    todo = np.arange(len(empty))
    for radius in range(1, k + 1):
        if len(todo) == 0:
            break
        masks = bit_masks(k, radius)
        step = max(1, _CHUNK_ELEMENTS // len(masks))
        found = np.concatenate(
            [
                _nearest_first(first, base, target, to_partition, todo[s : s + step], masks)
                for s in range(0, len(todo), step)
            ]
        )
        best[todo] = found
        todo = todo[found < 0]
    fde[empty] = proj[best]


def _nearest_first(
    first: np.ndarray,
    base: np.ndarray,
    target: np.ndarray,
    to_partition: np.ndarray,
    todo: np.ndarray,
    masks: np.ndarray,
) -> np.ndarray:
    """Smallest first-token row among the cells at the masks' distance, -1 where all empty."""
    rows = first[base[todo, None] + to_partition[target[todo, None] ^ masks[None, :]]]
    nearest = np.where(rows < 0, np.iinfo(np.int64).max, rows).min(axis=1)
    return np.where(nearest == np.iinfo(np.int64).max, -1, nearest)


@dataclass(frozen=True)
class CountSketch:
    """A Count-sketch from in_dim to out_dim: coordinate i adds sign[i] * x[i] to bucket[i]."""

    bucket: np.ndarray  # (in_dim,) int64 in [0, out_dim)
    sign: np.ndarray  # (in_dim,) float32 in {-1, +1}
    out_dim: int

    def apply(self, x: np.ndarray) -> np.ndarray:
        """(n, in_dim) -> (n, out_dim) float32."""
        order = np.argsort(self.bucket, kind="stable")
        sorted_bucket = self.bucket[order]
        starts = np.flatnonzero(np.r_[True, sorted_bucket[1:] != sorted_bucket[:-1]])
        signed = x[:, order] * self.sign[order]
        out = np.zeros((len(x), self.out_dim), dtype=np.float32)
        out[:, sorted_bucket[starts]] = np.add.reduceat(signed, starts, axis=1)
        return out
