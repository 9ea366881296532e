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

from dataclasses import dataclass

import numpy as np

_CHUNK_ELEMENTS = 1 << 22  # bound on tokens x repetitions x projected dims per chunk
_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


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


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """Bits (..., k) as integers, first bit most significant."""
    k = bits.shape[-1]
    weights = (1 << np.arange(k - 1, -1, -1)).astype(np.int64)
    return (bits.astype(np.int64) * weights).sum(-1)


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Popcount of a ^ b for non-negative integers below 2**32."""
    x = np.bitwise_xor(a, b).astype(np.uint32)
    return (
        _POPCOUNT[x & 0xFF]
        + _POPCOUNT[(x >> 8) & 0xFF]
        + _POPCOUNT[(x >> 16) & 0xFF]
        + _POPCOUNT[(x >> 24) & 0xFF]
    )


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
    """FDEs (n, fde_dim) float32 of the point clouds tokens[offsets[i]:offsets[i + 1]]."""
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
    part = gray_partition(bits)  # (tokens, r)
    cloud = np.repeat(np.arange(n), np.diff(offsets))
    cell = (cloud[:, None] * r + np.arange(r)) * p + part  # (tokens, r) into (n * r * p)
    proj = project(x, mats)  # (tokens, r, d)
    sums = scatter_sum(cell, proj, n * r * p).reshape(n, r, p, -1)
    if is_query:
        return sums.reshape(n, -1)
    counts = np.bincount(cell.ravel(), minlength=n * r * p).reshape(n, r, p)
    sums /= np.maximum(counts, 1)[..., None]
    if fill_empty and mats.k_sim > 0:
        fill_empty_partitions(sums, counts, pack_bits(bits), proj, offsets)
    return sums.reshape(n, -1)


def project(x: np.ndarray, mats: FdeMatrices) -> np.ndarray:
    """Tokens in each repetition's projected space (tokens, r_reps, d_proj)."""
    if mats.projection is None:
        return np.broadcast_to(x[:, None, :], (len(x), mats.r_reps, x.shape[1]))
    return (x @ mats.projection).reshape(len(x), mats.r_reps, -1)


def scatter_sum(cell: np.ndarray, values: np.ndarray, n_cells: int) -> np.ndarray:
    """Sum of values (tokens, r, d) per cell id (tokens, r): (n_cells, d) float32."""
    d = values.shape[-1]
    order = np.argsort(cell.ravel(), kind="stable")
    sorted_cells = cell.ravel()[order]
    starts = np.flatnonzero(np.r_[True, sorted_cells[1:] != sorted_cells[:-1]])
    rows = np.ascontiguousarray(values).reshape(-1, d)[order]
    out = np.zeros((n_cells, d), dtype=np.float32)
    if len(rows):
        out[sorted_cells[starts]] = np.add.reduceat(rows, starts, axis=0)
    return out


def fill_empty_partitions(
    fde: np.ndarray,
    counts: np.ndarray,
    token_bits: np.ndarray,
    proj: np.ndarray,
    offsets: np.ndarray,
) -> None:
    """In place: each empty (cloud, rep, partition) cell of fde (n, r, p, d) takes the projected
    token of that cloud whose sketch bits are nearest to the partition's bits (first on ties)."""
    empty = np.nonzero(counts == 0)
    if len(empty[0]) == 0:
        return
    p = counts.shape[2]
    targets = partition_bits(np.arange(p))
    dist = hamming(token_bits[:, :, None], targets[None, None, :])  # (tokens, r, p)
    local = np.arange(len(token_bits)) - np.repeat(offsets[:-1], np.diff(offsets))
    stride = int(np.diff(offsets).max())
    key = dist.astype(np.int64) * stride + local[:, None, None]
    best = np.minimum.reduceat(key, offsets[:-1], axis=0) % stride  # (n, r, p)
    cloud, rep, part = empty
    token = offsets[cloud] + best[cloud, rep, part]
    fde[cloud, rep, part] = proj[token, rep]


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
