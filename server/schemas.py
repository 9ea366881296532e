"""Request and response bodies of the REST API (pydantic: validated, and the OpenAPI source).

Upserts are parsed by hand (server/bodies.py) to keep large float lists out of pydantic;
`UpsertRequest` documents their shape."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from server.service.filters import Filter
from server.service.spec import CollectionSpec

PointIdIn = int | str
Dtype = Literal["float32", "float16"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# points ------------------------------------------------------------------------------------
class UpsertPoint(_Body):
    """One point: an id, one source of vectors (unless the batch has `vectors_b64`), a payload."""

    id: PointIdIn = Field(description="unsigned 64-bit integer or UUID string")
    vector: list[float] | None = Field(None, description="single-vector collections")
    vectors: list[list[float]] | None = Field(
        None, description="multi-vector collections: the point's token vectors"
    )
    vector_b64: str | None = Field(
        None, description="base64 of little-endian float32/float16 values (row-major)"
    )
    dtype: Dtype = Field("float32", description="dtype of vector_b64")
    shape: list[int] | None = Field(
        None, description="shape of vector_b64: [dim] or, multi-vector, [tokens, dim]"
    )
    text: str | None = Field(None, description="text for the collection's embedder")
    payload: dict[str, Any] | None = None


class UpsertRequest(_Body):
    """A batch upsert. Bulk fast path: leave the points' vectors out and send the whole batch
    as one `vectors_b64` (little-endian `dtype`, row-major, `shape` [n, dim]; multi-vector:
    [total_tokens, dim] plus `offsets` [n + 1] delimiting each point's tokens)."""

    points: list[UpsertPoint] = Field(max_length=100_000)
    vectors_b64: str | None = None
    dtype: Dtype = "float32"
    shape: list[int] | None = None
    offsets: list[int] | None = None


class WriteResponse(BaseModel):
    """`completed`: durable and visible to search; `acknowledged` (wait=false): durably
    logged, applied to the index in order shortly after."""

    operation_id: int
    status: Literal["acknowledged", "completed"]
    count: int = Field(description="points written or deleted")


class DeleteRequest(_Body):
    """Delete by ids or by filter (exactly one)."""

    ids: list[PointIdIn] | None = Field(None, max_length=100_000)
    filter: Filter | None = None

    @model_validator(mode="after")
    def _one(self) -> DeleteRequest:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter")
        return self


class PointOut(BaseModel):
    id: PointIdIn
    version: int = Field(description="operation id of the write that stored it")
    payload: dict[str, Any] | None = None
    vector: list[float] | list[list[float]] | None = None


class ScrollRequest(_Body):
    filter: Filter | None = None
    limit: int = Field(100, ge=1, le=10_000)
    cursor: str | None = Field(None, description="next_cursor of the previous page")
    with_payload: bool = True
    with_vectors: bool = False


class ScrollResponse(BaseModel):
    points: list[PointOut]
    next_cursor: str | None = Field(description="null on the last page")


class CountRequest(_Body):
    filter: Filter | None = None


class CountResponse(BaseModel):
    count: int


# search ------------------------------------------------------------------------------------
class SearchParamsIn(_Body):
    nprobe: int | None = Field(None, ge=1, le=1 << 20, description="IVF lists to scan")
    ef_search: int | None = Field(None, ge=1, le=1 << 16, description="HNSW beam width")
    rerank: bool | None = Field(None, description="re-score candidates exactly (float16)")
    oversample: float | None = Field(None, ge=1, le=1000, description="candidates per result")


class SearchRequest(_Body):
    """One query: `vector` (single-vector), `vectors` (multi-vector tokens), `vector_b64`
    (+ dtype, + shape [tokens, dim] for multi-vector) or `text` (collections with an embedder)."""

    vector: list[float] | None = None
    vectors: list[list[float]] | None = None
    vector_b64: str | None = None
    dtype: Dtype = "float32"
    shape: list[int] | None = None
    text: str | None = Field(None, max_length=100_000)
    k: int = Field(10, ge=1, le=10_000)
    filter: Filter | None = None
    with_payload: bool = True
    with_vectors: bool = False
    params: SearchParamsIn = Field(default_factory=lambda: SearchParamsIn.model_validate({}))

    @model_validator(mode="after")
    def _one_source(self) -> SearchRequest:
        given = [self.vector, self.vectors, self.vector_b64, self.text]
        if sum(v is not None for v in given) != 1:
            raise ValueError("give exactly one of vector, vectors, vector_b64, text")
        return self


class BatchSearchRequest(_Body):
    searches: list[SearchRequest] = Field(min_length=1, max_length=1000)


class HitOut(BaseModel):
    id: PointIdIn
    score: float = Field(
        description="ip/cosine: inner product (larger is better); l2: Euclidean distance "
        "(smaller is better); multi-vector: Chamfer sum"
    )
    payload: dict[str, Any] | None = None
    vector: list[float] | list[list[float]] | None = None


class SearchResponse(BaseModel):
    hits: list[HitOut]


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]


# collections -------------------------------------------------------------------------------
class TrainingOut(BaseModel):
    state: Literal["untrained", "training", "trained"]
    trained: bool = Field(description="whether searches use the collection's own index")
    error: str | None
    last_duration_s: float | None
    train_size: int


class CollectionInfo(BaseModel):
    name: str
    spec: CollectionSpec
    points: int
    indexed_points: int
    bytes_in_ram: int
    bytes_on_disk: int
    index_bytes_on_disk: int
    store_bytes_on_disk: int
    training: TrainingOut
    applied_seq: int
    checkpoint_seq: int | None
    pending_operations: int


class CollectionList(BaseModel):
    collections: list[str]


class TrainResponse(BaseModel):
    state: Literal["untrained", "training", "trained"]


class SnapshotOut(BaseModel):
    name: str
    size_bytes: int
    created_at: float = Field(description="seconds since the epoch")


class SnapshotList(BaseModel):
    snapshots: list[SnapshotOut]


class RestoreRequest(_Body):
    snapshot: str = Field(description="name of a snapshot of this collection")


class Status(BaseModel):
    status: str


class Readiness(BaseModel):
    status: Literal["ready"]
    load_s: float | None = Field(description="seconds spent opening the collections")
    failed: dict[str, str] = Field(description="collections that could not be opened")
