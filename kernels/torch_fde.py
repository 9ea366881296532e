"""Batched MUVERA FDE encoding in torch, the same semantics as `kernels.fde` (read its
docstring): sketch bits from one matmul, Gray-code partition per (token, repetition), sums by
index_add, averages for documents, and empty partitions filled with the projected token of the
nearest non-empty partition in Hamming distance (first token on ties).

The fill is a min over all partitions at once: for the p = 2**k_sim cells of a (cloud,
repetition), key[target, source] = hamming(target, source) * R + first_row[source] with R above
any row, so the smallest key is the nearest cell and, among the nearest, the earliest token.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels.dispatch import to_device, to_numpy
from kernels.fde import FdeMatrices, chunk_bounds

_FILL_ELEMENTS = 1 << 24  # bound on groups x p x p keys of one fill step


def gray_partition(bits: torch.Tensor) -> torch.Tensor:
    """Partition index of sketch bits (..., k_sim) bool, appended in order as a Gray code."""
    g = torch.zeros(bits.shape[:-1], dtype=torch.int64, device=bits.device)
    for j in range(bits.shape[-1]):
        g = (g << 1) + (bits[..., j].long() ^ (g & 1))
    return g


def hamming_partitions(k: int, dev: torch.device) -> torch.Tensor:
    """(p, p) Hamming distances between the sketch bits of partitions."""
    p = torch.arange(1 << k, device=dev)
    bits = p ^ (p >> 1)
    x = bits[:, None] ^ bits[None, :]
    return ((x[..., None] >> torch.arange(k, device=dev)) & 1).sum(-1)


class TorchFde:
    """FDE matrices on one device; `encode` maps packed point clouds to FDEs."""

    def __init__(self, mats: FdeMatrices, dev: torch.device) -> None:
        self.mats = mats
        self.dev = dev
        self.simhash = to_device(mats.simhash.astype(np.float32), dev)
        proj = mats.projection
        self.projection = None if proj is None else to_device(proj.astype(np.float32), dev)
        self.hamming = hamming_partitions(mats.k_sim, dev)

    def encode(
        self, tokens: np.ndarray, offsets: np.ndarray, is_query: bool, fill_empty: bool
    ) -> np.ndarray:
        """FDEs (n, fde_dim) float32 of the point clouds tokens[offsets[i]:offsets[i + 1]]."""
        x = to_device(np.asarray(tokens, dtype=np.float32), self.dev)
        return to_numpy(self.encode_device(x, offsets, is_query, fill_empty))

    def encode_device(
        self, x: torch.Tensor, offsets: np.ndarray, is_query: bool, fill_empty: bool
    ) -> torch.Tensor:
        """FDEs on the device of tokens already there (chunks of whole clouds)."""
        mats = self.mats
        out = torch.empty((len(offsets) - 1, mats.fde_dim), dtype=torch.float32, device=self.dev)
        for start, end in chunk_bounds(offsets, mats.r_reps * mats.d_proj):
            lo, hi = int(offsets[start]), int(offsets[end])
            cloud_offsets = offsets[start : end + 1] - lo
            out[start:end] = self.chunk(x[lo:hi], cloud_offsets, is_query, fill_empty)
        return out

    def chunk(
        self, x: torch.Tensor, offsets: np.ndarray, is_query: bool, fill_empty: bool
    ) -> torch.Tensor:
        """FDEs (n, fde_dim) on the device of the clouds of one chunk (offsets start at 0)."""
        n, r, p = len(offsets) - 1, self.mats.r_reps, self.mats.n_partitions
        bits = (x @ self.simhash).reshape(len(x), r, self.mats.k_sim) > 0
        counts = torch.from_numpy(np.diff(offsets)).to(self.dev)
        cloud = torch.repeat_interleave(torch.arange(n, device=self.dev), counts)
        reps = torch.arange(r, device=self.dev)
        cell = ((cloud[:, None] * r + reps) * p + gray_partition(bits)).reshape(-1)
        proj = self.project(x).reshape(len(cell), -1)  # row t * r + rep
        fde = torch.zeros((n * r * p, proj.shape[1]), dtype=torch.float32, device=self.dev)
        fde.index_add_(0, cell, proj)
        if not is_query:
            sizes = torch.bincount(cell, minlength=n * r * p)
            fde /= sizes.clamp(min=1)[:, None].float()
            if fill_empty and self.mats.k_sim > 0:
                self.fill_empty_cells(fde, cell, sizes, proj)
        return fde.reshape(n, -1)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """Tokens in each repetition's projected space (tokens, r_reps, d_proj)."""
        r = self.mats.r_reps
        if self.projection is None:
            return x[:, None, :].expand(len(x), r, x.shape[1])
        return (x @ self.projection).reshape(len(x), r, -1)

    def fill_empty_cells(
        self, fde: torch.Tensor, cell: torch.Tensor, sizes: torch.Tensor, proj: torch.Tensor
    ) -> None:
        """In place: each empty cell takes the projected token of the nearest non-empty cell of
        its (cloud, repetition), the earliest token on ties (see the module docstring)."""
        p = self.mats.n_partitions
        rows = torch.arange(len(cell), device=self.dev)
        none = len(cell)  # above every row: marks an empty source
        first = torch.full((len(sizes),), none, dtype=torch.int64, device=self.dev)
        first.scatter_reduce_(0, cell, rows, reduce="amin")
        groups = first.reshape(-1, p)
        scale = none + 1
        step = max(1, _FILL_ELEMENTS // (p * p))
        best = torch.empty_like(groups)
        for s in range(0, len(groups), step):
            g = groups[s : s + step]
            keys = self.hamming[None] * scale + g[:, None, :]
            keys = keys.masked_fill((g == none)[:, None, :], torch.iinfo(torch.int64).max)
            low = keys.amin(dim=2)
            best[s : s + step] = torch.where(low == torch.iinfo(torch.int64).max, none, low % scale)
        best = best.reshape(-1)
        empty = (sizes == 0) & (best < none)
        fde[empty] = proj[best[empty]]


def fde_batch(
    tokens: np.ndarray,
    offsets: np.ndarray,
    mats: FdeMatrices,
    is_query: bool,
    fill_empty: bool,
    dev: torch.device,
) -> np.ndarray:
    """FDEs (n, fde_dim) float32, as `kernels.fde.fde_batch` computes them, on `dev`."""
    return TorchFde(mats, dev).encode(tokens, offsets, is_query, fill_empty)
