"""BEBR recurrent binarization (arXiv 2302.08714) searched with Symmetric Distance Calculation.

Each of u steps binarizes (sign) the residual left by the reconstruction so far, passed through
a small residual MLP: b_t = sign(r + mlp_t(r)), r <- z - sum_t alpha_t b_t. A dimension's value
is sum_t alpha_t b_t with one scalar alpha_t per step, so every segment of s dimensions shares
one structured codebook of 2**(u*s) entries and the codes are PQ codes in FAISS layout. Queries
are binarized the same way, so FAISS's lookup tables over that codebook compute exactly SDC:
LUT_m[k] = <c(q_m), c(k)> = T[q_m, k] with T = C C^T. At u=1 that ranking is Hamming ranking.

method="allocated" (encoders/binary_alloc.py) keeps this code layout and SDC search but codes
principal components with learned level tables and a per-component bit allocation.

The training-free variant (learned=False) uses the identity transform, no MLPs and closed-form
scales alpha_t = mean |r_t|; the learned one trains a linear map, the MLPs and the scales with
torch on the collection's own vectors (encoders/binary_train.py).
"""

from __future__ import annotations

import numpy as np

from core.errors import CorruptData, InvalidInput, InvalidSpec
from encoders.base import Encoder
from encoders.spec import BinarySpec

SEGMENT_DIMS = {1: 8, 2: 4, 3: 3, 4: 2}  # s per u: u*s = 8, 8, 9, 8 bits per segment
_CHUNK = 8192
_FIT_ROWS = 16_384
MLP_NAMES = ("w1", "b1", "w2", "b2")


def padded_dim(dim: int, s: int) -> int:
    """Smallest multiple of s that holds dim (extra coordinates are zero)."""
    return -(-dim // s) * s


def step_values(scales: np.ndarray) -> np.ndarray:
    """(2**u,) value of each u-bit digit: bit t of the digit is the sign of step t."""
    u = len(scales)
    digits = np.arange(1 << u)
    signs = 2.0 * ((digits[:, None] >> np.arange(u)) & 1) - 1.0
    return (signs @ scales.astype(np.float64)).astype(np.float32)


def segment_codebook(scales: np.ndarray, s: int) -> np.ndarray:
    """(2**(u*s), s) structured codebook: key k holds digit (k >> u*i) & (2**u - 1) in dim i."""
    u = len(scales)
    keys = np.arange(1 << (u * s))
    digits = (keys[:, None] >> (u * np.arange(s))) & ((1 << u) - 1)
    return np.ascontiguousarray(step_values(scales)[digits])


def pack_codes(keys: np.ndarray, nbits: int) -> np.ndarray:
    """(n, m) keys -> (n, ceil(m*nbits/8)) uint8, LSB-first as faiss PQEncoderGeneric writes."""
    n, m = keys.shape
    bits = ((keys[:, :, None] >> np.arange(nbits)) & 1).astype(np.uint8).reshape(n, m * nbits)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_codes(codes: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """Inverse of `pack_codes`: (n, code_size) uint8 -> (n, m) int64 keys."""
    bits = np.unpackbits(codes, axis=1, bitorder="little")[:, : m * nbits]
    bits = bits.reshape(len(codes), m, nbits).astype(np.int64)
    return (bits << np.arange(nbits)).sum(axis=2)


def digits_to_keys(digits: np.ndarray, u: int, s: int) -> np.ndarray:
    """(n, m*s) per-dimension digits -> (n, m) segment keys."""
    n = len(digits)
    grouped = digits.reshape(n, -1, s).astype(np.int64)
    return (grouped << (u * np.arange(s))).sum(axis=2)


def mlp_residual(r: np.ndarray, t: int, weights: dict[str, np.ndarray]) -> np.ndarray:
    """r + mlp_t(r): the input of step t's sign (float32, as the torch model computes it)."""
    h = np.maximum(r @ weights["w1"][t] + weights["b1"][t], 0.0)
    return r + (h @ weights["w2"][t] + weights["b2"][t])


def counts_shape(u: int) -> tuple[int, int]:
    """Shape of the constant-weight counts: one row per step, one column per group of dims
    (step t >= 1 splits dims into 2**(t-1) groups by their earlier outward/inward pattern)."""
    return u, 1 << max(u - 2, 0)


def top_in_groups(push: np.ndarray, group: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """(n, d) bool: in every row, the counts[g] largest `push` among the dims of group g
    (dims tied with the counts[g]-th largest are all taken)."""
    up = np.zeros(push.shape, dtype=bool)
    d = push.shape[1]
    for g, k in enumerate(counts):
        if k <= 0:
            continue
        mine = group == g
        key = np.where(mine, push, -np.inf)
        kth = (
            -np.partition(-key, k - 1, axis=1)[:, k - 1 : k] if k < d else key.min(1, keepdims=True)
        )
        up |= mine & (key >= kth)
    return up


def binarize(
    z: np.ndarray,
    scales: np.ndarray,
    weights: dict[str, np.ndarray] | None,
    counts: np.ndarray | None = None,
) -> np.ndarray:
    """(n, d) score-space vectors -> (n, d) u-bit digits (bit t set when step t's sign is +).

    Without counts, step t's sign is that of its input. With counts (constant weight), step
    t >= 1 sets b_t = b_0 ("outward") on exactly counts[t, g] dims of each group g of dims that
    share the earlier steps' pattern, those whose input pushes outward most; every code then
    holds the same multiset of |values|, so every reconstruction has the same norm.
    """
    digits = np.zeros(z.shape, dtype=np.uint8)
    recon = np.zeros_like(z)
    first = np.zeros(z.shape, dtype=bool)
    group = np.zeros(z.shape, dtype=np.uint8)
    for t, alpha in enumerate(scales):
        r = z - recon
        pre = r if weights is None else mlp_residual(r, t, weights)
        if t == 0 or counts is None:
            positive = pre >= 0
        else:
            up = top_in_groups(np.where(first, pre, -pre), group, counts[t, : 1 << (t - 1)])
            positive = up == first
            group |= up.astype(np.uint8) << (t - 1)
        if t == 0:
            first = positive
        digits |= positive.astype(np.uint8) << t
        recon += np.where(positive, alpha, -alpha).astype(np.float32)
    return digits


def digit_signs(digits: np.ndarray, steps: int) -> np.ndarray:
    """(n, d) digits -> (n, d, steps) float64 signs +-1."""
    return 2.0 * ((digits[..., None] >> np.arange(steps)) & 1) - 1.0


def least_squares_scales(z: np.ndarray, digits: np.ndarray, steps: int) -> np.ndarray:
    """The scales minimising ||z - sum_t alpha_t b_t||^2 for fixed signs (a steps x steps
    system)."""
    b = digit_signs(digits, steps).reshape(-1, steps)
    gram = b.T @ b + 1e-9 * np.eye(steps)
    scales = np.linalg.solve(gram, b.T @ z.reshape(-1).astype(np.float64))
    return np.maximum(scales, 1e-12).astype(np.float32)


def constant_weight_counts(
    z: np.ndarray, scales: np.ndarray, weights: dict[str, np.ndarray] | None = None
) -> np.ndarray:
    """(u, groups) counts: per step and group, the mean number of outward signs that free
    signs would set on z, step by step (each step coded with the counts of the ones before)."""
    u, d = len(scales), z.shape[1]
    counts = np.zeros(counts_shape(u), dtype=np.int64)
    for t in range(1, u):
        signs = digit_signs(binarize(z, scales[:t], weights, counts), t)
        group = ((signs[:, :, 1:] == signs[:, :, :1]) << np.arange(t - 1)).sum(axis=2)
        r = z - (signs * scales[:t]).sum(axis=2).astype(np.float32)
        pre = r if weights is None else mlp_residual(r, t, weights)
        outward = (pre >= 0) == (signs[:, :, 0] > 0)
        for g in range(1 << (t - 1)):
            mean = (outward & (group == g)).sum() / len(z)
            counts[t, g] = min(round(mean), d)
    return counts


def closed_form_scales(z: np.ndarray, steps: int) -> np.ndarray:
    """alpha_t = mean |r_t| (least squares for r_t ~ alpha sign(r_t)), step by step."""
    scales = np.zeros(steps, dtype=np.float32)
    r = z.astype(np.float32, copy=True)
    for t in range(steps):
        scales[t] = max(float(np.abs(r).mean()), 1e-12)
        r -= np.where(r >= 0, scales[t], -scales[t]).astype(np.float32)
    return scales


def closed_form_fit(
    z: np.ndarray, steps: int, constant_weight: bool, rounds: int = 3
) -> tuple[np.ndarray, np.ndarray | None]:
    """Training-free scales (and constant-weight counts): greedy scales, then alternate
    counts and least-squares scales for the constant-weight codes (on at most _FIT_ROWS rows:
    they are averages)."""
    z = z[:: -(-len(z) // _FIT_ROWS)]
    scales = closed_form_scales(z, steps)
    if not constant_weight or steps == 1:
        return scales, None
    counts = constant_weight_counts(z, scales)
    for _ in range(rounds):
        scales = least_squares_scales(z, binarize(z, scales, None, counts), steps)
        counts = constant_weight_counts(z, scales)
    return scales, counts


class BinaryEncoder(Encoder):
    """u sign bits per dimension, packed s dimensions per PQ segment, scored by SDC tables."""

    kind = "binary"
    needs_training = True

    def __init__(self, spec: BinarySpec, dim: int) -> None:
        super().__init__(spec, dim)
        if spec.bits not in SEGMENT_DIMS:
            raise InvalidSpec(f"binary: bits must be one of 1..4, got {spec.bits}")
        self.u = spec.bits
        self.s = SEGMENT_DIMS[self.u]
        self.d_pad = padded_dim(dim, self.s)
        self.projection = np.eye(dim, self.d_pad, dtype=np.float32)
        self.scales = np.zeros(self.u, dtype=np.float32)
        self.weights: dict[str, np.ndarray] | None = None
        self.counts: np.ndarray | None = None

    # shape of the codes --------------------------------------------------------------------
    @property
    def out_dim(self) -> int:
        return self.d_pad

    @property
    def m(self) -> int:
        """Number of segments (PQ sub-quantizers)."""
        return self.d_pad // self.s

    @property
    def nbits(self) -> int:
        return self.u * self.s

    @property
    def code_size(self) -> int:
        return (self.m * self.nbits + 7) // 8

    @property
    def bytes_per_vector(self) -> int:
        return self.code_size

    # codebook and tables -------------------------------------------------------------------
    def segment_codebook(self) -> np.ndarray:
        """(2**nbits, s) codebook shared by every segment."""
        self.require_trained()
        return segment_codebook(self.scales, self.s)

    def codebooks(self) -> np.ndarray:
        """(m, 2**nbits, s): the structured codebook tiled for every segment."""
        book = self.segment_codebook()
        return np.ascontiguousarray(np.broadcast_to(book, (self.m, *book.shape)))

    def sdc_table(self) -> np.ndarray:
        """(2**nbits, 2**nbits) symmetric table T[k, k'] = <c_k, c_k'> of segment scores."""
        book = self.segment_codebook().astype(np.float64)
        return (book @ book.T).astype(np.float32)

    # training ------------------------------------------------------------------------------
    def fit(self, x: np.ndarray) -> None:
        """Closed-form scales (training-free) or the torch-trained binarizer (learned)."""
        sample = self._sample(self.check(x))
        self.projection = np.eye(self.dim, self.d_pad, dtype=np.float32)
        self.weights = None
        self.scales, self.counts = closed_form_fit(
            self.transform(sample), self.u, self.spec.constant_weight
        )
        if self.spec.learned:
            from encoders.binary_train import train_binarizer

            self.load_state(train_binarizer(sample, self.state(), self.spec))
        self.is_trained = True

    def _sample(self, x: np.ndarray) -> np.ndarray:
        if len(x) < 2:
            raise InvalidInput(f"binary: need at least 2 training vectors, got {len(x)}")
        if len(x) <= self.spec.max_train:
            return x
        rng = np.random.default_rng(self.spec.seed)
        return x[np.sort(rng.choice(len(x), size=self.spec.max_train, replace=False))]

    # coding --------------------------------------------------------------------------------
    def transform(self, x: np.ndarray) -> np.ndarray:
        """Data into score space: the learned linear map (or identity with zero padding)."""
        return np.ascontiguousarray(x @ self.projection, dtype=np.float32)

    def digits(self, x: np.ndarray) -> np.ndarray:
        """(n, out_dim) u-bit digit per dimension (bit t: sign of step t)."""
        self.require_trained()
        x = self.check(x)
        out = np.empty((len(x), self.d_pad), dtype=np.uint8)
        for s in range(0, len(x), _CHUNK):
            out[s : s + _CHUNK] = self.code_slots(self.transform(x[s : s + _CHUNK]))
        return out

    def code_slots(self, z: np.ndarray) -> np.ndarray:
        """(n, out_dim) score-space rows -> their digits (the recurrent binarization)."""
        return binarize(z, self.scales, self.weights, self.counts)

    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, code_size) uint8 in FAISS ProductQuantizer layout."""
        keys = digits_to_keys(self.digits(x), self.u, self.s)
        return pack_codes(keys, self.nbits)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, out_dim) reconstructions sum_t alpha_t b_t."""
        self.require_trained()
        codes = self.check_codes(codes)
        keys = unpack_codes(codes, self.m, self.nbits)
        return np.ascontiguousarray(self.segment_codebook()[keys].reshape(len(codes), self.d_pad))

    def check_codes(self, codes: object) -> np.ndarray:
        """A (n, code_size) uint8 matrix."""
        arr = np.asarray(codes)
        if arr.dtype != np.uint8:
            raise InvalidInput(f"codes: expected dtype uint8, got {arr.dtype}")
        if arr.ndim != 2 or arr.shape[1] != self.code_size:
            raise InvalidInput(f"codes: expected shape (n, {self.code_size}), got {arr.shape}")
        return np.ascontiguousarray(arr)

    def query_view(self, xq: np.ndarray) -> np.ndarray:
        """SDC: queries binarized like the data, then reconstructed."""
        return self.decode(self.encode(self.check(xq, "queries")))

    # persistence ---------------------------------------------------------------------------
    def state_names(self) -> list[str]:
        names = ["projection", "scales"]
        if self.spec.constant_weight and self.u > 1:
            names.append("counts")
        return names + list(MLP_NAMES) if self.spec.learned else names

    def state(self) -> dict[str, np.ndarray]:
        out = {"projection": self.projection, "scales": self.scales}
        if self.counts is not None:
            out["counts"] = self.counts
        if self.weights is not None:
            out.update(self.weights)
        return out

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.projection = _float_array(arrays["projection"], (self.dim, self.d_pad), "projection")
        self.scales = _float_array(arrays["scales"], (self.u,), "scales")
        self.counts = (
            _counts_array(arrays["counts"], self.u, self.d_pad) if "counts" in arrays else None
        )
        if all(name in arrays for name in MLP_NAMES):
            self.weights = {name: _float_array(arrays[name], None, name) for name in MLP_NAMES}
            _check_mlp(self.weights, self.u, self.d_pad)
        else:
            self.weights = None


def _float_array(arr: np.ndarray, shape: tuple[int, ...] | None, name: str) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.float32)
    if shape is not None and out.shape != shape:
        raise CorruptData(f"binary state {name}: expected shape {shape}, got {out.shape}")
    return out


def _counts_array(arr: np.ndarray, u: int, d: int) -> np.ndarray:
    out = np.ascontiguousarray(arr, dtype=np.int64)
    if out.shape != counts_shape(u) or out.min() < 0 or out.max() > d:
        raise CorruptData(f"binary state counts: expected {counts_shape(u)} counts in [0, {d}]")
    return out


def _check_mlp(weights: dict[str, np.ndarray], u: int, d: int) -> None:
    hidden = weights["w1"].shape[-1]
    expected = {"w1": (u, d, hidden), "b1": (u, hidden), "w2": (u, hidden, d), "b2": (u, d)}
    for name, shape in expected.items():
        if weights[name].shape != shape:
            raise CorruptData(f"binary state {name}: expected {shape}, got {weights[name].shape}")
