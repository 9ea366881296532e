"""Product quantization with optional OPQ rotation and RepCONC balanced codebooks.

Codes use FAISS's ProductQuantizer layout (nbits=4 packs two codes per byte), so FAISS indexes
(IndexPQ, IVF-PQ, fast-scan) can hold them and score them with ADC lookup tables.
"""

from __future__ import annotations

import faiss
import numpy as np

from core.errors import InvalidSpec
from encoders.base import Encoder
from encoders.pq_assign import anisotropic_codes
from encoders.pq_train import train_codebooks, train_opq
from encoders.spec import PQSpec


def padded_dim(dim: int, m: int) -> int:
    """Smallest multiple of m that holds dim (extra coordinates are zero)."""
    return -(-dim // m) * m


class PQEncoder(Encoder):
    """m sub-quantizers of 2**nbits centroids over a rotated (or zero-padded) space."""

    kind = "pq"
    needs_training = True
    nearest_centroid_codes = True  # FAISS computes the same codes (when anisotropic_eta == 1)
    isometric = True  # an orthogonal rotation and zero padding preserve inner products

    def __init__(self, spec: PQSpec, dim: int) -> None:
        super().__init__(spec, dim)
        if spec.m > dim:
            raise InvalidSpec(f"pq: m={spec.m} sub-quantizers for only {dim} dimensions")
        self.d_pad = padded_dim(dim, spec.m)
        self.pq = faiss.ProductQuantizer(self.d_pad, spec.m, spec.nbits)
        self.rotation = np.eye(dim, self.d_pad, dtype=np.float32)
        # anisotropic codes are not FAISS's nearest-centroid codes: indexes take them as given
        self.nearest_centroid_codes = self._aniso_passes == 0

    @property
    def _aniso_passes(self) -> int:
        return 0 if self.spec.anisotropic_eta == 1.0 else int(self.spec.anisotropic_passes)

    @property
    def code_size(self) -> int:
        return int(self.pq.code_size)

    @property
    def out_dim(self) -> int:
        return self.d_pad

    @property
    def nbits(self) -> int:
        return int(self.spec.nbits)

    @property
    def ksub(self) -> int:
        return 1 << self.spec.nbits

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Into the quantized space: rotation (OPQ) or zero padding."""
        if not self.spec.opq:
            return _pad(x, self.d_pad)
        return np.ascontiguousarray(x @ self.rotation)

    def isometry(self, x: np.ndarray) -> np.ndarray:
        return self.transform(self.check(x))

    def fit(self, x: np.ndarray) -> None:
        """Learn the rotation (OPQ) then the codebooks on a sample of x."""
        sample = self._sample(self.check(x))
        self.fit_rotation(sample)
        self.fit_codebooks(self.transform(sample))

    def _sample(self, x: np.ndarray) -> np.ndarray:
        if len(x) < self.ksub:
            raise InvalidSpec(f"pq: {len(x)} training vectors for {self.ksub} centroids")
        if len(x) <= self.spec.max_train:
            return x
        rng = np.random.default_rng(self.spec.seed)
        return x[np.sort(rng.choice(len(x), size=self.spec.max_train, replace=False))]

    def fit_rotation(self, x: np.ndarray) -> None:
        """OPQ: an orthogonal rotation learned by alternating PQ and Procrustes (if enabled)."""
        spec = self.spec
        pad = np.eye(self.dim, self.d_pad, dtype=np.float32)
        self.rotation = pad
        if spec.opq and spec.opq_iterations > 0:
            rot = train_opq(np.ascontiguousarray(x @ pad), spec.m, spec.opq_iterations, len(x))
            self.rotation = np.ascontiguousarray(pad @ rot)

    def fit_codebooks(self, z: np.ndarray) -> None:
        """Codebooks on data already in the quantized space (e.g. IVF residuals)."""
        spec = self.spec
        z = self._sample(np.ascontiguousarray(z, dtype=np.float32))
        books = train_codebooks(
            z,
            spec.m,
            self.ksub,
            spec.iterations,
            np.random.default_rng(spec.seed + 2),
            balanced=spec.balanced,
            epsilon=spec.sinkhorn_epsilon,
            sinkhorn_iterations=spec.sinkhorn_iterations,
        )
        self.set_codebooks(books)
        self.is_trained = True

    def set_codebooks(self, books: np.ndarray) -> None:
        """Install (m, ksub, dsub) centroids into the FAISS quantizer."""
        faiss.copy_array_to_vector(
            np.ascontiguousarray(books, np.float32).ravel(), self.pq.centroids
        )
        self.pq.sync_transposed_centroids()

    def codebooks(self) -> np.ndarray:
        """(m, ksub, dsub) centroids."""
        dsub = self.d_pad // self.spec.m
        return faiss.vector_to_array(self.pq.centroids).reshape(self.spec.m, self.ksub, dsub)

    def encode(self, x: np.ndarray) -> np.ndarray:
        self.require_trained()
        z = self.transform(self.check(x))
        return self.encode_target(z, z)

    def encode_target(self, target: np.ndarray, direction: np.ndarray) -> np.ndarray:
        """Codes of `target` (in the quantized space), scored along `direction`: the target
        itself for plain codes, the full vector when the target is an IVF residual."""
        self.require_trained()
        target = np.ascontiguousarray(target, dtype=np.float32)
        codes = self.pq.compute_codes(target)
        if self._aniso_passes == 0 or len(target) == 0:
            return codes
        digits = anisotropic_codes(
            target,
            direction,
            self.codebooks(),
            unpack_codes(codes, self.spec.m, self.nbits),
            self.spec.anisotropic_eta,
            self._aniso_passes,
        )
        return pack_codes(digits, self.nbits, self.code_size)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        self.require_trained()
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.code_size)
        return self.pq.decode(codes)

    def query_view(self, xq: np.ndarray) -> np.ndarray:
        return self.transform(self.check(xq, "queries"))

    def state(self) -> dict[str, np.ndarray]:
        if not self.spec.opq:  # zero padding needs no matrix
            return {"codebooks": self.codebooks()}
        return {"codebooks": self.codebooks(), "rotation": self.rotation}

    def state_names(self) -> list[str]:
        return ["codebooks", "rotation"] if self.spec.opq else ["codebooks"]

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        if "rotation" in arrays:
            self.rotation = np.ascontiguousarray(arrays["rotation"], dtype=np.float32)
        self.set_codebooks(arrays["codebooks"])


def _pad(x: np.ndarray, width: int) -> np.ndarray:
    """float32 rows zero-padded to `width` columns."""
    x = np.asarray(x, dtype=np.float32)
    if x.shape[1] == width:
        return np.ascontiguousarray(x)
    out = np.zeros((len(x), width), dtype=np.float32)
    out[:, : x.shape[1]] = x
    return out


def unpack_codes(codes: np.ndarray, m: int, nbits: int) -> np.ndarray:
    """FAISS PQ codes (n, code_size) -> centroid indices (n, m); 4-bit codes low nibble first."""
    codes = np.ascontiguousarray(codes, dtype=np.uint8)
    if nbits == 8:
        return codes[:, :m].astype(np.int64)
    pairs = np.stack([codes & 15, codes >> 4], axis=2).reshape(len(codes), -1)
    return pairs[:, :m].astype(np.int64)


def pack_codes(digits: np.ndarray, nbits: int, code_size: int) -> np.ndarray:
    """Inverse of `unpack_codes`."""
    digits = np.ascontiguousarray(digits, dtype=np.uint8)
    if nbits == 8:
        return digits
    n, m = digits.shape
    padded = np.zeros((n, code_size * 2), dtype=np.uint8)
    padded[:, :m] = digits
    return np.ascontiguousarray(padded[:, 0::2] | (padded[:, 1::2] << 4))
