"""Index specs: how codes are organised (flat scan, IVF, HNSW) and the re-rank stage."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Metric = Literal["ip", "l2"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RerankSpec(_Spec):
    """Re-score oversample x k candidates exactly from a memory-mapped float16 file."""

    enabled: bool = False
    oversample: float = Field(10.0, ge=1.0, le=1000.0)


class FlatSpec(_Spec):
    """Exhaustive scan: SDC/ADC lookup tables over every code (or exact float scan)."""

    kind: Literal["flat"] = "flat"
    metric: Metric = "ip"
    rerank: RerankSpec = Field(default_factory=lambda: RerankSpec.model_validate({}))


class IVFSpec(_Spec):
    """Inverted file: a k-means coarse quantizer, codes stored per list."""

    kind: Literal["ivf"] = "ivf"
    metric: Metric = "ip"
    nlist: int = Field(1024, ge=1, le=1 << 20)
    nprobe: int = Field(32, ge=1)
    by_residual: bool = True
    train_iterations: int = Field(20, ge=1, le=200)
    max_train: int = Field(131_072, ge=256)
    seed: int = 0
    rerank: RerankSpec = Field(default_factory=lambda: RerankSpec.model_validate({}))


class HNSWSpec(_Spec):
    """HNSW graph over float vectors."""

    kind: Literal["hnsw"] = "hnsw"
    metric: Metric = "ip"
    m: int = Field(32, ge=4, le=256)
    ef_construction: int = Field(40, ge=8)
    ef_search: int = Field(64, ge=1)
    rerank: RerankSpec = Field(default_factory=lambda: RerankSpec.model_validate({}))


IndexSpec = Annotated[FlatSpec | IVFSpec | HNSWSpec, Field(discriminator="kind")]


@dataclass(frozen=True)
class SearchParams:
    """Per-search overrides of the index defaults."""

    nprobe: int | None = None
    ef_search: int | None = None
    rerank: bool | None = None
    oversample: float | None = None
