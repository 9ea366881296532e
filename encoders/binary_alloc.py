"""Allocated binary codes (BinarySpec method="allocated"): PCA, per-component bit allocation and
learned 1-d level tables, in the same PQ segments and SDC tables as the BEBR variants.

Fitted on the collection only. The vectors are rotated onto their principal components; each
component gets b_i bits (at most MAX_BITS; bits * dim in all, so the code size is the BEBR one)
from a greedy allocation by the drop of its 1-d Lloyd quantizer's error weighted by
eigenvalue_i**p, and the components are packed into the segments (at most s components and
bits * s bits each). A component is coded as its nearest level: b_i threshold decisions, each
conditioned on the earlier ones (a recurrent binarization), decoded from its level table. A
segment's codebook is the product of its components' tables, so queries coded the same way score
by lookup tables over code segments (SDC), with no re-rank.

The weight exponent p is BinarySpec.weight_power when given. When it is None, fit chooses p
among POWERS by SDC recall@10 of held-out *collection* vectors used as pseudo-queries against
other collection vectors: no query set is ever seen. p=0 is plain reconstruction error.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.errors import CorruptData, InvalidSpec
from encoders.binary import BinaryEncoder, pack_codes, padded_dim, unpack_codes
from encoders.spec import BinarySpec

MAX_BITS = 8
LEVELS = 1 << MAX_BITS
POWERS = (0.0, 0.25, 0.5, 0.75, 1.0)
LLOYD_ITERATIONS = 25
PSEUDO_QUERIES = 500
PSEUDO_BASE = 20_000
PSEUDO_K = 10


@dataclass(frozen=True)
class Allocation:
    """Slot j of the score space (segment j // s) holds one principal component, or nothing."""

    projection: np.ndarray  # (dim, d_pad) float32: the component of each slot (zero if empty)
    slot_bits: np.ndarray  # (d_pad,) int64: bits of each slot (0: decoded as 0)
    levels: np.ndarray  # (d_pad, LEVELS) float32: sorted levels, the first 2**bits used


# fitting ------------------------------------------------------------------------------------
def principal_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eigenvalues (d,), axes (d, d) as columns) of the covariance of x, largest first."""
    centred = x.astype(np.float64) - x.mean(axis=0, dtype=np.float64)
    eigenvalues, axes = np.linalg.eigh(centred.T @ centred / max(len(x) - 1, 1))
    return np.maximum(eigenvalues[::-1], 0.0), np.ascontiguousarray(axes[:, ::-1])


def cell_edges(sorted_v: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(k+1,) bounds of each level's cell in sorted values (nearest level; ties go down)."""
    cuts = np.searchsorted(sorted_v, (levels[1:] + levels[:-1]) / 2, side="right")
    return np.concatenate(([0], cuts, [len(sorted_v)]))


def lloyd_levels(sorted_v: np.ndarray, prefix: np.ndarray, k: int) -> np.ndarray:
    """k sorted levels of the 1-d Lloyd quantizer (prefix: cumulative sums of sorted_v from 0)."""
    n = len(sorted_v)
    levels = sorted_v[((np.arange(k) + 0.5) * n / k).astype(np.int64)]
    for _ in range(LLOYD_ITERATIONS):
        edges = cell_edges(sorted_v, levels)
        counts = np.diff(edges)
        means = np.diff(prefix[edges]) / np.maximum(counts, 1)
        levels = np.sort(np.where(counts > 0, means, levels))
    return levels


def level_tables(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(errors (d, MAX_BITS+1), levels (d, MAX_BITS+1, LEVELS)): mean squared error and levels of
    each column's quantizer at 0..MAX_BITS bits (0 bits: the value 0)."""
    n, d = z.shape
    errors = np.zeros((d, MAX_BITS + 1))
    levels = np.zeros((d, MAX_BITS + 1, LEVELS))
    for i in range(d):
        v = np.sort(z[:, i].astype(np.float64))
        prefix = np.concatenate(([0.0], np.cumsum(v)))
        prefix_sq = np.concatenate(([0.0], np.cumsum(v * v)))
        errors[i, 0] = prefix_sq[-1] / n
        for b in range(1, MAX_BITS + 1):
            lv = lloyd_levels(v, prefix, 1 << b)
            edges = cell_edges(v, lv)
            count, s1, s2 = np.diff(edges), np.diff(prefix[edges]), np.diff(prefix_sq[edges])
            errors[i, b] = max(float((s2 - 2 * lv * s1 + count * lv * lv).sum()) / n, 0.0)
            levels[i, b, : 1 << b] = lv
    return errors, levels


def greedy_bits(gains: np.ndarray, total: int) -> np.ndarray:
    """(d,) bits: `total` single bits, each to the component whose weighted error drops most
    (gains[i, b]: the drop from b to b+1 bits)."""
    d = len(gains)
    bits = np.zeros(d, dtype=np.int64)
    rows = np.arange(d)
    for _ in range(min(total, d * MAX_BITS)):
        gain = np.where(bits < MAX_BITS, gains[rows, np.minimum(bits, MAX_BITS - 1)], -np.inf)
        bits[int(np.argmax(gain))] += 1
    return bits


def pack_segments(bits: np.ndarray, m: int, s: int, cap: int) -> tuple[np.ndarray, np.ndarray]:
    """(bits, segment of each component, -1: none): most bits first, each into the least loaded
    segment with a free slot and room; one that fits nowhere is cut to the largest room left."""
    bits, segment = bits.copy(), np.full(len(bits), -1)
    load, count = np.zeros(m, dtype=np.int64), np.zeros(m, dtype=np.int64)
    for i in np.argsort(-bits, kind="stable"):
        room = np.where(count < s, cap - load, -1)
        bits[i] = min(int(bits[i]), int(room.max()))
        if bits[i] <= 0:
            bits[i] = 0
            continue
        fits = np.flatnonzero(room >= bits[i])
        j = fits[np.argmin(load[fits])]
        segment[i], load[j], count[j] = j, load[j] + bits[i], count[j] + 1
    return bits, segment


def refill(
    bits: np.ndarray, segment: np.ndarray, gains: np.ndarray, m: int, s: int, cap: int
) -> tuple[np.ndarray, np.ndarray]:
    """Spend every segment's spare bits on its own components, or on unplaced ones while it has
    a free slot, best weighted gain first."""
    bits, segment = bits.copy(), segment.copy()
    for j in range(m):
        while True:
            mine = np.flatnonzero(segment == j)
            if cap - bits[mine].sum() <= 0:
                break
            pool = mine if len(mine) >= s else np.concatenate([mine, np.flatnonzero(segment < 0)])
            pool = pool[bits[pool] < MAX_BITS]
            if len(pool) == 0:
                break
            i = pool[np.argmax(gains[pool, bits[pool]])]
            bits[i], segment[i] = bits[i] + 1, j
    return bits, segment


def slot_components(segment: np.ndarray, m: int, s: int) -> np.ndarray:
    """(m*s,) component in each slot, -1 for an empty one: a segment's components first, then
    the unplaced (zero-bit) components in the free slots."""
    slots = np.full(m * s, -1)
    for j in range(m):
        mine = np.flatnonzero(segment == j)
        slots[j * s : j * s + len(mine)] = mine
    unplaced = np.flatnonzero(segment < 0)
    slots[np.flatnonzero(slots < 0)[: len(unplaced)]] = unplaced
    return slots


def allocate(
    axes: np.ndarray, errors: np.ndarray, levels: np.ndarray, weights: np.ndarray, u: int, s: int
) -> Allocation:
    """The allocation of u bits per slot of the padded score space for component weights."""
    m = padded_dim(len(weights), s) // s
    gains = weights[:, None] * (errors[:, :-1] - errors[:, 1:])
    bits, segment = pack_segments(greedy_bits(gains, m * u * s), m, s, u * s)
    bits, segment = refill(bits, segment, gains, m, s, u * s)
    slots = slot_components(segment, m, s)
    used, comp = slots >= 0, np.maximum(slots, 0)
    slot_bits = np.where(used, bits[comp], 0)
    return Allocation(
        projection=np.ascontiguousarray(np.where(used, axes[:, comp], 0.0), dtype=np.float32),
        slot_bits=slot_bits.astype(np.int64),
        levels=np.where(used[:, None], levels[comp, slot_bits], 0.0).astype(np.float32),
    )


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """(n, k) columns of the k largest scores per row (unordered)."""
    return np.argpartition(-scores, k - 1, axis=1)[:, :k]


def choose_power(
    x: np.ndarray,
    eigenvalues: np.ndarray,
    tables: tuple[np.ndarray, np.ndarray, np.ndarray],
    u: int,
    s: int,
    seed: int,
) -> float:
    """The POWERS entry whose allocation has the best SDC recall@10 for held-out collection
    vectors as queries against other collection vectors (ties: the smaller p)."""
    order = np.random.default_rng(seed).permutation(len(x))
    nq = min(PSEUDO_QUERIES, len(x) // 10)
    queries, base = x[order[:nq]], x[order[nq : nq + PSEUDO_BASE]]
    if nq == 0 or len(base) <= PSEUDO_K:
        return 0.0
    truth = top_k(queries @ base.T, PSEUDO_K)
    found = []
    for power in POWERS:
        alloc = allocate(*tables, eigenvalues**power, u, s)
        rq, rb = (reconstruct(alloc, v) for v in (queries, base))
        hits = top_k(rq @ rb.T, PSEUDO_K)
        found.append(np.mean([len(np.intersect1d(a, b)) for a, b in zip(hits, truth, strict=True)]))
    return POWERS[int(np.argmax(found))]


def fit_allocation(
    x: np.ndarray, u: int, s: int, power: float | None, seed: int
) -> tuple[Allocation, float]:
    """(allocation, the exponent p used) fitted on collection vectors x."""
    eigenvalues, axes = principal_axes(x)
    errors, levels = level_tables(x @ axes)
    if power is None:
        power = choose_power(x, eigenvalues, (axes, errors, levels), u, s, seed)
    return allocate(axes, errors, levels, eigenvalues**power, u, s), power


# coding -------------------------------------------------------------------------------------
def nearest_levels(z: np.ndarray, slot_bits: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(n, d_pad) uint8 index of each slot's nearest level (ties go down; 0 for 0-bit slots)."""
    out = np.zeros(z.shape, dtype=np.uint8)
    for i in np.flatnonzero(slot_bits):
        lv = levels[i, : 1 << int(slot_bits[i])]
        out[:, i] = np.searchsorted((lv[1:] + lv[:-1]) / 2, z[:, i])
    return out


def slot_offsets(slot_bits: np.ndarray, s: int) -> np.ndarray:
    """(d_pad,) position of each slot's digit inside its segment key."""
    per_segment = slot_bits.reshape(-1, s)
    return (np.cumsum(per_segment, axis=1) - per_segment).reshape(-1)


def segment_keys(digits: np.ndarray, slot_bits: np.ndarray, s: int) -> np.ndarray:
    """(n, d_pad) digits -> (n, m) segment keys (each digit at its slot's offset)."""
    shifted = digits.astype(np.int64) << slot_offsets(slot_bits, s)
    return shifted.reshape(len(digits), -1, s).sum(axis=2)


def key_digits(keys: np.ndarray, slot_bits: np.ndarray, s: int) -> np.ndarray:
    """Inverse of `segment_keys`: (n, m) keys -> (n, d_pad) digits."""
    per_slot = np.repeat(keys.astype(np.int64), s, axis=1)
    return (per_slot >> slot_offsets(slot_bits, s)) & ((1 << slot_bits) - 1)


def slot_values(digits: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """(n, d_pad) float32 level of each slot's digit."""
    return np.ascontiguousarray(levels[np.arange(levels.shape[0]), digits])


def reconstruct(alloc: Allocation, x: np.ndarray) -> np.ndarray:
    """Coded-then-decoded vectors in score space (no packing: for fitting)."""
    z = (x @ alloc.projection).astype(np.float32)
    return slot_values(nearest_levels(z, alloc.slot_bits, alloc.levels), alloc.levels)


def segment_codebooks(slot_bits: np.ndarray, levels: np.ndarray, s: int, nbits: int) -> np.ndarray:
    """(m, 2**nbits, s): key k of segment j decodes to its slots' levels."""
    keys = np.arange(1 << nbits)[:, None]
    digits = key_digits(np.repeat(keys, len(slot_bits) // s, axis=1), slot_bits, s)
    values = slot_values(digits, levels)  # (2**nbits, d_pad)
    return np.ascontiguousarray(values.reshape(1 << nbits, -1, s).transpose(1, 0, 2))


class AllocatedBinaryEncoder(BinaryEncoder):
    """BinarySpec(method="allocated"): same code size, layout and SDC search as BEBR."""

    def __init__(self, spec: BinarySpec, dim: int) -> None:
        super().__init__(spec, dim)
        self.slot_bits = np.zeros(self.d_pad, dtype=np.int64)
        self.levels = np.zeros((self.d_pad, LEVELS), dtype=np.float32)
        self.weight_power = np.zeros(1, dtype=np.float64)

    def fit(self, x: np.ndarray) -> None:
        """PCA, level tables and bit allocation on (a seeded sample of) the collection."""
        sample = self._sample(self.check(x))
        alloc, power = fit_allocation(
            sample, self.u, self.s, self.spec.weight_power, self.spec.seed
        )
        self.projection, self.slot_bits, self.levels = (
            alloc.projection,
            alloc.slot_bits,
            alloc.levels,
        )
        self.weight_power = np.array([power], dtype=np.float64)
        self.is_trained = True

    def code_slots(self, z: np.ndarray) -> np.ndarray:
        """(n, out_dim) score-space rows -> index of each slot's nearest level."""
        return nearest_levels(z, self.slot_bits, self.levels)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, code_size) uint8 in FAISS ProductQuantizer layout."""
        return pack_codes(segment_keys(self.digits(x), self.slot_bits, self.s), self.nbits)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, out_dim) levels of the coded slots."""
        self.require_trained()
        keys = unpack_codes(self.check_codes(codes), self.m, self.nbits)
        return slot_values(key_digits(keys, self.slot_bits, self.s), self.levels)

    def codebooks(self) -> np.ndarray:
        """(m, 2**nbits, s): one codebook per segment (its components' level tables)."""
        self.require_trained()
        return segment_codebooks(self.slot_bits, self.levels, self.s, self.nbits)

    def segment_codebook(self) -> np.ndarray:
        raise InvalidSpec("binary allocated: every segment has its own codebook (codebooks())")

    def sdc_table(self) -> np.ndarray:
        raise InvalidSpec("binary allocated: every segment has its own table (codebooks())")

    # persistence ----------------------------------------------------------------------------
    def state_names(self) -> list[str]:
        return ["projection", "slot_bits", "levels", "weight_power"]

    def state(self) -> dict[str, np.ndarray]:
        return {
            "projection": self.projection,
            "slot_bits": self.slot_bits,
            "levels": self.levels,
            "weight_power": self.weight_power,
        }

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.projection = _checked(arrays["projection"], (self.dim, self.d_pad), np.float32)
        self.levels = _checked(arrays["levels"], (self.d_pad, LEVELS), np.float32)
        self.weight_power = _checked(arrays["weight_power"], (1,), np.float64)
        bits = _checked(arrays["slot_bits"], (self.d_pad,), np.int64)
        if (
            bits.min() < 0
            or bits.max() > MAX_BITS
            or bits.reshape(-1, self.s).sum(1).max() > self.nbits
        ):
            raise CorruptData(f"binary state slot_bits: more than {self.nbits} bits in a segment")
        self.slot_bits = bits


def _checked(arr: np.ndarray, shape: tuple[int, ...], dtype: type[np.generic]) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=dtype)
    if out.shape != shape:
        raise CorruptData(f"binary allocated state: expected shape {shape}, got {out.shape}")
    return out
