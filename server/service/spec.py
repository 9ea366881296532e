"""The collection spec: one pydantic value (dim, metric, encoder, index, search defaults,
training threshold, embedder) that is saved beside the collection and rebuilds it exactly."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from encoders.spec import EncoderSpec, Float16Spec
from index.spec import FlatSpec, IndexSpec

Metric = Literal["ip", "cosine", "l2"]
EMBEDDER_DIMS = {"minilm": 384}
TRAINED_ENCODERS = ("pq", "binary")


class CollectionSpec(BaseModel):
    """What a collection is; sent with `PUT /collections/{name}` and returned by GET."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    dim: int = Field(ge=1, le=65_536, description="vector (or token vector) dimension")
    metric: Metric = Field(
        "cosine",
        description="ip: inner product; cosine: vectors normalised, then inner product; "
        "l2: Euclidean distance (search reports the distance, smaller is better)",
    )
    multivector: bool = Field(
        False, description="points are sets of token vectors (ColBERT-style), scored by Chamfer"
    )
    encoder: EncoderSpec = Field(
        default_factory=Float16Spec,
        description="how vectors are compressed (float32, float16, pq, binary; muvera for "
        "multi-vector collections)",
    )
    index: IndexSpec = Field(
        default_factory=FlatSpec,
        description="how codes are organised (flat, ivf, hnsw) and the re-rank stage; "
        "index.metric is derived from metric",
    )
    rerank: bool | None = Field(None, description="default re-rank switch of searches")
    oversample: float | None = Field(
        None, ge=1.0, le=1000.0, description="default candidates per result before re-rank"
    )
    train_size: int = Field(
        10_000, ge=1, le=10**9, description="points at which the encoder/index trains itself"
    )
    embedder: Literal["minilm"] | None = Field(
        None, description="text embedder: points and queries may then carry text"
    )

    @model_validator(mode="before")
    @classmethod
    def _derive(cls, data: Any) -> Any:
        """Multi-vector collections default to MUVERA; the index metric follows `metric`."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if data.get("multivector") and "encoder" not in data:
            data["encoder"] = {"kind": "muvera"}
        index = data.get("index", {"kind": "flat"})
        if isinstance(index, dict):
            index = dict(index)
            wanted = "l2" if data.get("metric") == "l2" else "ip"
            given = index.setdefault("metric", wanted)
            if given != wanted:
                raise ValueError(f"index.metric {given!r} contradicts metric; leave it out")
            data["index"] = index
        return data

    @model_validator(mode="after")
    def _consistent(self) -> CollectionSpec:
        is_muvera = self.encoder.kind == "muvera"
        if self.multivector != is_muvera:
            raise ValueError("multivector collections take a muvera encoder, and only they do")
        if self.multivector and self.metric == "l2":
            raise ValueError("multivector collections score by Chamfer: metric ip or cosine")
        if self.embedder is not None and self.dim != EMBEDDER_DIMS[self.embedder]:
            raise ValueError(
                f"embedder {self.embedder} makes {EMBEDDER_DIMS[self.embedder]}-d vectors"
            )
        nlist = getattr(self.index, "nlist", 0)
        if self.needs_training and self.train_size < nlist:
            raise ValueError(f"train_size {self.train_size} below index.nlist {nlist}")
        return self

    @property
    def faiss_metric(self) -> str:
        """The metric the index computes: cosine is inner product over unit vectors."""
        return "l2" if self.metric == "l2" else "ip"

    @property
    def needs_training(self) -> bool:
        """Whether the final index must be trained (before that, search is exact)."""
        encoder: Any = self.encoder
        inner = encoder.fde if encoder.kind == "muvera" else encoder
        return inner.kind in TRAINED_ENCODERS or self.index.kind == "ivf"

    def to_json(self) -> dict[str, Any]:
        """The normalised spec as plain JSON (what is saved and compared for idempotence)."""
        return self.model_dump(mode="json")
