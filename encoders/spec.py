"""Encoder specs: pydantic values that round-trip through JSON and fully determine an encoder."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Float32Spec(_Spec):
    """Identity, float32: the exact baseline."""

    kind: Literal["float32"] = "float32"


class Float16Spec(_Spec):
    """Identity, float16: half the bytes, the re-rank store's format."""

    kind: Literal["float16"] = "float16"


class PQSpec(_Spec):
    """Product quantization: m sub-vectors x 2**nbits centroids, optional OPQ rotation,
    codebooks trained with balanced (RepCONC, Sinkhorn) or plain k-means assignment."""

    kind: Literal["pq"] = "pq"
    m: int = Field(48, ge=1, le=4096, description="number of sub-quantizers (bytes at nbits=8)")
    nbits: Literal[4, 8] = 8
    opq: bool = Field(True, description="learn an orthogonal rotation before quantization")
    balanced: bool = Field(
        False,
        description="RepCONC constrained clustering: Sinkhorn equal-mass assignment during "
        "codebook training (measured on wordnet-minilm: lower recall than plain k-means, so off)",
    )
    anisotropic_eta: float = Field(
        4.0,
        ge=1.0,
        le=64.0,
        description="score-aware encoding: weight of the reconstruction error along the vector "
        "(1 = nearest centroid; >1 favours inner-product accuracy, ScaNN-style)",
    )
    anisotropic_passes: int = Field(2, ge=0, le=8, description="coordinate-descent passes")
    iterations: int = Field(20, ge=1, le=200, description="codebook training iterations")
    opq_iterations: int = Field(25, ge=0, le=100, description="OPQ alternations (FAISS OPQMatrix)")
    sinkhorn_iterations: int = Field(3, ge=1, le=100, description="per k-means step (warm-started)")
    sinkhorn_epsilon: float = Field(0.05, gt=0, description="entropy weight, relative to distances")
    max_train: int = Field(65_536, ge=256, description="training sample cap")
    seed: int = 0


class BinarySpec(_Spec):
    """`bits` binary digits per dimension in PQ segments, scored by SDC lookup tables.

    method="bebr" (the default, and the meaning of every spec saved before `method` existed):
    BEBR recurrent binarization; learned=True trains a linear map, one residual MLP per bit and
    the per-bit scales by listwise distillation on the collection; learned=False is the
    training-free baseline. method="allocated": PCA rotation, bits*dim bits allocated across
    the principal components, a learned 1-d level table per component (encoders/binary_alloc.py);
    it reads only bits, weight_power, max_train and seed.
    """

    kind: Literal["binary"] = "binary"
    bits: int = Field(2, ge=1, le=4, description="u: bits per dimension")
    method: Literal["bebr", "allocated"] = Field(
        "bebr",
        description="bebr: one sign per bit and dimension (learned or training-free); "
        "allocated: PCA + per-component bit allocation + learned level tables",
    )
    weight_power: float | None = Field(
        None,
        ge=0.0,
        le=2.0,
        description="allocated: component i's error weighs eigenvalue_i**p; None: p chosen in "
        "fit by recall of held-out collection vectors used as pseudo-queries",
    )
    learned: bool = Field(True, description="train the residual MLPs (else training-free)")
    constant_weight: bool = Field(
        True,
        description="every code holds the same number of outward signs per step (same norm "
        "for every reconstruction, so SDC scores rank like cosines); False: free signs",
    )
    hidden: int = Field(128, ge=8, le=8192, description="hidden width of each residual MLP")
    rotation_iterations: int = Field(
        8, ge=0, le=100, description="alternating (ITQ-style) rotation updates before SGD"
    )
    train_steps: int = Field(200, ge=0, le=100_000, description="optimizer steps (batches)")
    batch_size: int = Field(1024, ge=16, le=65_536, description="rows per batch")
    group: int = Field(8, ge=2, le=256, description="rows per anchor: itself + group-1 neighbours")
    neighbors: int = Field(32, ge=1, le=1024, description="exact neighbours an anchor draws from")
    anchors: int = Field(8192, ge=1, description="anchors (their exact neighbours are searched)")
    temperature: float = Field(0.05, gt=0, description="teacher softmax temperature")
    mse_weight: float = Field(0.0, ge=0, description="weight of the inner-product MSE term")
    learning_rate: float = Field(1e-4, gt=0)
    validation: int = Field(
        1000, ge=0, description="held-out sample rows whose recall picks the best checkpoint"
    )
    eval_every: int = Field(100, ge=1, description="optimizer steps between checkpoints")
    max_train: int = Field(65_536, ge=256, description="training sample cap")
    seed: int = 0


class MuveraSpec(_Spec):
    """MUVERA fixed-dimensional encodings of multi-vector documents, stored with `fde`."""

    kind: Literal["muvera"] = "muvera"
    r_reps: int = Field(20, ge=1, le=1024)
    k_sim: int = Field(5, ge=0, le=30)
    d_proj: int | None = Field(16, ge=1, description="AMS sketch inner projection; None = identity")
    final_dim: int | None = Field(None, ge=1, description="Count-sketch final projection")
    fill_empty: bool = True
    seed: int = 0
    fde: Float32Spec | Float16Spec | PQSpec | BinarySpec = Field(
        default_factory=Float32Spec, discriminator="kind"
    )

    @model_validator(mode="after")
    def _fits_in_memory(self) -> MuveraSpec:
        if self.final_dim is None and self.fde_dim_for(1) > 10**7:
            raise ValueError("FDE dimension above 10 million: lower r_reps, k_sim or d_proj")
        return self

    def fde_dim_for(self, dim: int) -> int:
        """Dimension of the FDE for token vectors of dimension `dim`."""
        if self.final_dim is not None:
            return self.final_dim
        return self.r_reps * (2**self.k_sim) * (self.d_proj or dim)


SingleVectorSpec = Annotated[
    Float32Spec | Float16Spec | PQSpec | BinarySpec, Field(discriminator="kind")
]
EncoderSpec = Annotated[
    Float32Spec | Float16Spec | PQSpec | BinarySpec | MuveraSpec, Field(discriminator="kind")
]
