"""The one core both clients share: every operation is a `Call` (what to send, how to read
the answer) built here; transports execute it over HTTP (sync or async) or in-process
(embedded), and `call.parse` turns the server's JSON into models. Vectors travel as base64
of little-endian float32 (float16 arrays stay float16): no float lists on the wire."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import numpy as np

from pith_client.errors import InvalidInput
from pith_client.models import (
    CollectionInfo,
    Hit,
    Point,
    PointId,
    ScrollPage,
    SnapshotInfo,
    WriteResult,
)

try:  # optional accelerators: SIMD base64 and a faster JSON encoder
    import pybase64

    _b64encode: Callable[[bytes], bytes] = pybase64.b64encode
except ImportError:  # pragma: no cover - depends on the environment
    _b64encode = base64.b64encode
try:
    import orjson

    def dumps(obj: Any) -> bytes:
        """JSON bytes (numpy arrays and scalars allowed)."""
        return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY)

    loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover

    def dumps(obj: Any) -> bytes:
        """JSON bytes."""
        return json.dumps(obj, separators=(",", ":")).encode()

    loads = json.loads

T = TypeVar("T")
Filter = Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request: `op` names it for the embedded backend, method/path/params/body for HTTP."""

    op: str
    method: str
    path: str
    parse: Callable[[Any], T]
    name: str | None = None
    body: Any = None
    params: dict[str, Any] = field(default_factory=dict)
    file_in: Path | None = None
    file_out: Path | None = None
    idempotent: bool = True


def _path(*parts: str) -> str:
    return "/" + "/".join(quote(str(p), safe="") for p in parts)


def _same(raw: Any) -> Any:
    return raw


# arrays ------------------------------------------------------------------------------------
def b64(arr: np.ndarray) -> tuple[str, str]:
    """(base64 of the array's little-endian bytes, dtype name): float16 stays, else float32."""
    dtype = "<f2" if arr.dtype == np.float16 else "<f4"
    data = np.ascontiguousarray(arr, dtype=dtype)
    return _b64encode(data.tobytes()).decode("ascii"), "float16" if dtype == "<f2" else "float32"


def is_multi(vectors: Any) -> bool:
    """Whether `vectors` is a sequence of token matrices (multi-vector points)."""
    if isinstance(vectors, np.ndarray):
        return vectors.dtype == object
    return len(vectors) > 0 and np.ndim(vectors[0]) == 2


def as_rows(vectors: Any) -> np.ndarray:
    """Single vectors as one (n, dim) array (float16 kept, everything else float32)."""
    arr = np.asarray(vectors)
    if arr.dtype != np.float16:
        try:
            arr = arr.astype(np.float32, copy=False)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"vectors: not a numeric array ({exc})") from exc
    if arr.ndim != 2:
        raise InvalidInput(f"vectors: expected an (n, dim) array, got shape {arr.shape}")
    return arr


def point_ids(ids: Any, n: int) -> list[PointId]:
    """Ids as JSON values: ints (numpy ints included) or UUID strings; None: 0..n-1."""
    if ids is None:
        return list(range(n))
    if isinstance(ids, np.ndarray):
        return list(ids.tolist())
    return [
        str(i) if isinstance(i, uuid.UUID) else (i if isinstance(i, str) else int(i)) for i in ids
    ]


def vectors_body(vectors: Any) -> dict[str, Any]:
    """The batch fast path: one `vectors_b64` (+ `offsets` for token matrices)."""
    if is_multi(vectors):
        parts = [as_rows(m) for m in vectors]
        lengths = [len(m) for m in parts]
        offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64).tolist()
        data = np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)
        text, dtype = b64(data)
        return {"vectors_b64": text, "dtype": dtype, "shape": list(data.shape), "offsets": offsets}
    rows = as_rows(vectors)
    text, dtype = b64(rows)
    return {"vectors_b64": text, "dtype": dtype, "shape": list(rows.shape)}


def query_body(vector: Any) -> dict[str, Any]:
    """A query vector (1-D) or token matrix (2-D) as `vector_b64`."""
    arr = np.asarray(vector)
    if arr.dtype != np.float16:
        arr = arr.astype(np.float32)
    text, dtype = b64(arr)
    out: dict[str, Any] = {"vector_b64": text, "dtype": dtype}
    if arr.ndim != 1:
        out["shape"] = list(arr.shape)
    return out


# collections -------------------------------------------------------------------------------
def create_collection(name: str, spec: Mapping[str, Any]) -> Call[CollectionInfo]:
    return Call(
        "create_collection",
        "PUT",
        _path("collections", name),
        CollectionInfo.from_json,
        name,
        dict(spec),
    )


def list_collections() -> Call[list[str]]:
    return Call("list_collections", "GET", "/collections", lambda raw: list(raw["collections"]))


def get_collection(name: str) -> Call[CollectionInfo]:
    return Call("get_collection", "GET", _path("collections", name), CollectionInfo.from_json, name)


def delete_collection(name: str) -> Call[None]:
    return Call("delete_collection", "DELETE", _path("collections", name), lambda _: None, name)


def train(name: str, wait: bool) -> Call[str]:
    path = _path("collections", name, "train")
    return Call("train", "POST", path, lambda r: str(r["state"]), name, params={"wait": wait})


# points ------------------------------------------------------------------------------------
def upsert(
    name: str,
    ids: Any,
    vectors: Any,
    payloads: Sequence[Mapping[str, Any] | None] | None,
    wait: bool = True,
) -> Call[WriteResult]:
    """Insert or replace points by id (so a retried batch writes the same thing again)."""
    body = vectors_body(vectors)
    n = len(body["offsets"]) - 1 if "offsets" in body else body["shape"][0]
    body["ids"] = point_ids(ids, n)
    if payloads is not None:
        body["payloads"] = [None if p is None else dict(p) for p in payloads]
    path = _path("collections", name, "points")
    return Call("upsert", "PUT", path, WriteResult.from_json, name, body, {"wait": wait})


def get_point(name: str, point_id: PointId, with_vector: bool) -> Call[Point]:
    path = _path("collections", name, "points", str(point_id))
    return Call(
        "get_point", "GET", path, Point.from_json, name, params={"with_vector": with_vector}
    )


def delete_points(name: str, ids: Any | None, flt: Filter | None, wait: bool) -> Call[WriteResult]:
    body: dict[str, Any] = {}
    if ids is not None:
        body["ids"] = point_ids(ids, 0)
    if flt is not None:
        body["filter"] = dict(flt)
    path = _path("collections", name, "points", "delete")
    return Call("delete_points", "POST", path, WriteResult.from_json, name, body, {"wait": wait})


def scroll(
    name: str,
    flt: Filter | None,
    limit: int,
    cursor: str | None,
    with_payload: bool,
    with_vectors: bool,
) -> Call[ScrollPage]:
    body: dict[str, Any] = {
        "limit": limit,
        "with_payload": with_payload,
        "with_vectors": with_vectors,
    }
    if flt is not None:
        body["filter"] = dict(flt)
    if cursor is not None:
        body["cursor"] = cursor
    path = _path("collections", name, "points", "scroll")
    return Call("scroll", "POST", path, ScrollPage.from_json, name, body)


def count(name: str, flt: Filter | None) -> Call[int]:
    body = {} if flt is None else {"filter": dict(flt)}
    path = _path("collections", name, "points", "count")
    return Call("count", "POST", path, lambda r: int(r["count"]), name, body)


# search ------------------------------------------------------------------------------------
def search_body(
    vector: Any,
    text: str | None,
    k: int,
    flt: Filter | None,
    with_payload: bool,
    with_vectors: bool,
    params: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """One search request body (exactly one of `vector` and `text`)."""
    if (vector is None) == (text is None):
        raise InvalidInput("give exactly one of vector and text")
    body: dict[str, Any] = query_body(vector) if vector is not None else {"text": text}
    body.update(k=k, with_payload=with_payload, with_vectors=with_vectors)
    if flt is not None:
        body["filter"] = dict(flt)
    if params:
        body["params"] = {key: v for key, v in params.items() if v is not None}
    return body


def _hits(raw: Any) -> list[Hit]:
    return [Hit.from_json(h) for h in raw["hits"]]


def search(name: str, body: dict[str, Any]) -> Call[list[Hit]]:
    return Call("search", "POST", _path("collections", name, "search"), _hits, name, body)


def search_batch(name: str, bodies: list[dict[str, Any]]) -> Call[list[list[Hit]]]:
    path = _path("collections", name, "search", "batch")
    return Call(
        "search_batch",
        "POST",
        path,
        lambda raw: [_hits(r) for r in raw["results"]],
        name,
        {"searches": bodies},
    )


# snapshots ---------------------------------------------------------------------------------
def create_snapshot(name: str) -> Call[SnapshotInfo]:
    path = _path("collections", name, "snapshots")
    return Call("create_snapshot", "POST", path, SnapshotInfo.from_json, name, idempotent=False)


def list_snapshots(name: str) -> Call[list[SnapshotInfo]]:
    path = _path("collections", name, "snapshots")
    return Call(
        "list_snapshots",
        "GET",
        path,
        lambda raw: [SnapshotInfo.from_json(s) for s in raw["snapshots"]],
        name,
    )


def restore_snapshot(name: str, snapshot: str) -> Call[CollectionInfo]:
    path = _path("collections", name, "snapshots", "restore")
    body = {"snapshot": snapshot}
    return Call("restore_snapshot", "POST", path, CollectionInfo.from_json, name, body)


def delete_snapshot(name: str, snapshot: str) -> Call[None]:
    path = _path("collections", name, "snapshots", snapshot)
    return Call("delete_snapshot", "DELETE", path, lambda _: None, name, {"snapshot": snapshot})


def download_snapshot(name: str, snapshot: str, target: Path) -> Call[Path]:
    path = _path("collections", name, "snapshots", snapshot)
    return Call(
        "download_snapshot",
        "GET",
        path,
        lambda _: target,
        name,
        {"snapshot": snapshot},
        file_out=target,
    )


def upload_snapshot(name: str, tarball: Path) -> Call[CollectionInfo]:
    path = _path("collections", name, "snapshots", "upload")
    return Call("upload_snapshot", "PUT", path, CollectionInfo.from_json, name, file_in=tarball)


def readiness() -> Call[dict[str, Any]]:
    return Call("readiness", "GET", "/readyz", _same)
