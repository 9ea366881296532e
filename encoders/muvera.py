"""MUVERA fixed-dimensional encodings (arXiv 2405.19504) of multi-vector documents.

`MuveraEncoder` is an `Encoder` whose inputs are point clouds, not rows: a batch is a list of
(tokens_i, dim) matrices. It maps them to FDE vectors (`encode_documents`, `encode_queries`)
whose inner product approximates Chamfer similarity, and stores document FDEs as codes of an
inner single-vector encoder (`inner`, built from `spec.fde` over `fde_dim` dimensions):

    encode(docs) = inner.encode(encode_documents(docs))
    query_view(queries) = inner.query_view(encode_queries(queries))
    scores(queries, codes) ~ Chamfer(queries, docs) (times r_reps)

The random matrices depend on the seed alone (`np.random.default_rng(seed + r)` for repetition
r); they are also saved, so a reopened encoder is bit-exact whatever numpy's streams become.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from core.arrays import as_multivectors, pack_multivectors
from core.errors import InvalidInput, InvalidSpec
from encoders.base import Encoder
from encoders.factory import build_encoder
from encoders.pq import PQEncoder
from encoders.spec import MuveraSpec, PQSpec
from kernels.fde import CountSketch, FdeMatrices, fde_batch

MultiVectors = Sequence[np.ndarray]
INNER_PREFIX = "fde_"
MAX_FDE_DIM = 10**7


def fde_matrices(spec: MuveraSpec, dim: int) -> FdeMatrices:
    """SimHash and AMS-sketch matrices of every repetition r, each drawn from seed + r (the
    streams muvera-python draws, so query FDEs of the two agree exactly)."""
    sims, projs = [], []
    for r in range(spec.r_reps):
        rng = np.random.default_rng(spec.seed + r)
        sims.append(rng.normal(0.0, 1.0, size=(dim, spec.k_sim)).astype(np.float32))
        if spec.d_proj is not None:
            projs.append(ams_matrix(np.random.default_rng(spec.seed + r), dim, spec.d_proj))
    projection = np.concatenate(projs, axis=1) if projs else None
    return FdeMatrices(np.concatenate(sims, axis=1), projection, spec.r_reps, spec.k_sim)


def ams_matrix(rng: np.random.Generator, dim: int, d_proj: int) -> np.ndarray:
    """(dim, d_proj): each input coordinate goes to one random output column with sign +-1."""
    column = rng.integers(0, d_proj, size=dim)
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=dim)
    out = np.zeros((dim, d_proj), dtype=np.float32)
    out[np.arange(dim), column] = sign
    return out


def count_sketch(spec: MuveraSpec, in_dim: int) -> CountSketch | None:
    """The final Count-sketch projection, drawn from the seed (None when final_dim is unset)."""
    if spec.final_dim is None:
        return None
    rng = np.random.default_rng(spec.seed)
    bucket = rng.integers(0, spec.final_dim, size=in_dim)
    sign = rng.choice(np.array([-1.0, 1.0], dtype=np.float32), size=in_dim)
    return CountSketch(bucket, sign, spec.final_dim)


class PaddedPQEncoder(PQEncoder):
    """PQ without OPQ over wide FDEs: zero padding instead of `PQEncoder`'s dense identity
    rotation, which at 10,240 dimensions is a 400 MB matrix and 10^8 MACs per query."""

    def __init__(self, spec: PQSpec, dim: int) -> None:
        if spec.opq:
            raise InvalidSpec("PaddedPQEncoder has no OPQ rotation")
        super().__init__(spec, dim)
        self.rotation = np.zeros((0, 0), dtype=np.float32)

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.d_pad == self.dim:
            return np.ascontiguousarray(x, dtype=np.float32)
        out = np.zeros((len(x), self.d_pad), dtype=np.float32)
        out[:, : self.dim] = x
        return out

    def fit_rotation(self, x: np.ndarray) -> None:
        """No rotation to learn."""

    def state(self) -> dict[str, np.ndarray]:
        return {"codebooks": self.codebooks()}

    def state_names(self) -> list[str]:
        return ["codebooks"]

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        self.set_codebooks(arrays["codebooks"])


def build_inner(spec: Any, fde_dim: int) -> Encoder:
    """The FDE storage encoder (PQ without OPQ pads instead of rotating)."""
    if isinstance(spec, PQSpec) and not spec.opq:
        return PaddedPQEncoder(spec, fde_dim)
    return build_encoder(spec, fde_dim)


class MuveraEncoder(Encoder):
    """Point clouds -> FDE vectors -> codes of the inner encoder (see the module docstring)."""

    kind = "muvera"

    def __init__(self, spec: MuveraSpec, dim: int) -> None:
        if spec.d_proj is not None and spec.d_proj > dim:
            raise InvalidSpec(f"muvera: d_proj={spec.d_proj} above the token dimension {dim}")
        if spec.r_reps * (2**spec.k_sim) * (spec.d_proj or dim) > MAX_FDE_DIM:
            raise InvalidSpec("muvera: FDE above 10 million dimensions: lower r_reps or k_sim")
        self.mats = fde_matrices(spec, dim)
        self.sketch = count_sketch(spec, self.mats.fde_dim)
        self.inner = build_inner(spec.fde, spec.fde_dim_for(dim))
        super().__init__(spec, dim)

    @property
    def is_trained(self) -> bool:
        """Whether the inner encoder is trained (FDEs themselves need no training)."""
        return self.inner.is_trained

    @is_trained.setter
    def is_trained(self, value: bool) -> None:
        """Derived from the inner encoder; `load_state` and `fit` train that one."""

    @property
    def fde_dim(self) -> int:
        return self.sketch.out_dim if self.sketch is not None else self.mats.fde_dim

    @property
    def code_size(self) -> int:
        return self.inner.code_size

    @property
    def out_dim(self) -> int:
        return self.inner.out_dim

    def check(self, x: object, name: str = "documents") -> list[np.ndarray]:  # type: ignore[override]
        """Validate a list of point clouds: each a non-empty, finite (tokens, dim) matrix."""
        if isinstance(x, str | bytes) or not isinstance(x, Sequence | np.ndarray):
            raise InvalidInput(f"{name}: expected a list of (tokens, {self.dim}) matrices")
        return as_multivectors(cast(Sequence[object], x), self.dim, name=name)

    # FDEs ----------------------------------------------------------------------------------
    def encode_documents(self, docs: MultiVectors) -> np.ndarray:
        """(n, fde_dim) float32 document FDEs: average per partition, empty ones filled."""
        return self._fde(self.check(docs), is_query=False)

    def encode_queries(self, queries: MultiVectors) -> np.ndarray:
        """(n, fde_dim) float32 query FDEs: sum per partition."""
        return self._fde(self.check(queries, "queries"), is_query=True)

    def encode_packed(self, tokens: np.ndarray, offsets: np.ndarray, is_query: bool) -> np.ndarray:
        """FDEs of already validated point clouds given as concatenated tokens and offsets."""
        fde = fde_batch(tokens, offsets, self.mats, is_query, self.spec.fill_empty)
        return self.sketch.apply(fde) if self.sketch is not None else fde

    def _fde(self, clouds: list[np.ndarray], is_query: bool) -> np.ndarray:
        if not clouds:
            return np.zeros((0, self.fde_dim), dtype=np.float32)
        tokens, offsets = pack_multivectors(clouds)
        return self.encode_packed(tokens, offsets, is_query)

    # Encoder interface over point clouds ---------------------------------------------------
    def fit(self, x: MultiVectors) -> None:  # type: ignore[override]
        """Train the inner encoder on the documents' FDEs."""
        self.inner.fit(self.encode_documents(x))

    def encode(self, x: MultiVectors) -> np.ndarray:  # type: ignore[override]
        """Point clouds -> (n, code_size) uint8 codes of their FDEs."""
        self.inner.require_trained()
        return self.inner.encode(self.encode_documents(x))

    def decode(self, codes: np.ndarray) -> np.ndarray:
        """Codes -> (n, out_dim) reconstructed FDEs in the inner encoder's score space."""
        return self.inner.decode(codes)

    def query_view(self, xq: MultiVectors) -> np.ndarray:  # type: ignore[override]
        """Query point clouds in the inner encoder's score space."""
        return self.inner.query_view(self.encode_queries(xq))

    # persistence ---------------------------------------------------------------------------
    def own_state(self) -> dict[str, np.ndarray]:
        """The random matrices (saved so that a reload does not depend on numpy's streams)."""
        out = {"simhash": self.mats.simhash}
        if self.mats.projection is not None:
            out["projection"] = self.mats.projection
        if self.sketch is not None:
            out["final_bucket"] = self.sketch.bucket
            out["final_sign"] = self.sketch.sign
        return out

    def state(self) -> dict[str, np.ndarray]:
        out = self.own_state()
        if self.inner.is_trained:
            out.update({INNER_PREFIX + k: v for k, v in self.inner.state().items()})
        return out

    def state_names(self) -> list[str]:
        return [*self.own_state(), *(INNER_PREFIX + k for k in self.inner.state_names())]

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the saved matrices (bit-exact) and the inner encoder's learned arrays."""
        projection = arrays.get("projection")
        self.mats = FdeMatrices(
            _f32(arrays["simhash"]),
            None if projection is None else _f32(projection),
            self.mats.r_reps,
            self.mats.k_sim,
        )
        if self.sketch is not None:
            bucket = np.asarray(arrays["final_bucket"], dtype=np.int64)
            self.sketch = CountSketch(bucket, _f32(arrays["final_sign"]), self.sketch.out_dim)
        n = len(INNER_PREFIX)
        self.inner.load_state({k[n:]: v for k, v in arrays.items() if k.startswith(INNER_PREFIX)})
        self.inner.is_trained = True


def _f32(arr: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(arr, dtype=np.float32)
