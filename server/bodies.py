"""Turning request bodies into service inputs without pydantic on large float lists:
upserts are parsed with orjson, vectors converted with numpy (JSON lists or base64 of
little-endian float32/float16), then validated once by the collection."""

from __future__ import annotations

import binascii
import math
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import orjson
import pybase64  # SIMD base64: several times faster than binascii on large batches
from pydantic import BaseModel, ValidationError

from core.errors import InvalidInput
from server.errors import validation_message
from server.schemas import SearchRequest
from server.service.collection import Collection
from server.service.ids import U64_MAX, id_key
from server.service.vectors import Vectors

M = TypeVar("M", bound=BaseModel)
DTYPES: dict[str, np.dtype[Any]] = {"float32": np.dtype("<f4"), "float16": np.dtype("<f2")}
BATCH_KEYS = {"points", "ids", "payloads", "vectors_b64", "dtype", "shape", "offsets"}
B64_KEY = b'"vectors_b64"'
POINT_KEYS = {"id", "vector", "vectors", "vector_b64", "dtype", "shape", "text", "payload"}
SOURCES = ("vector", "vectors", "vector_b64", "text")
MAX_PAYLOAD_DEPTH = 64  # orjson writes at most 255 levels; deeper payloads were a 500


@dataclass(frozen=True)
class UpsertBatch:
    keys: list[str]
    vectors: Vectors
    payloads: list[dict[str, Any] | None]


def decode_b64(text: object, dtype: object, shape: object, name: str) -> np.ndarray:
    """base64 of little-endian values -> an array of `shape` (1-D when shape is None)."""
    if not isinstance(text, str | bytes | memoryview):
        raise InvalidInput(f"{name}: expected a base64 string")
    if dtype not in DTYPES:
        raise InvalidInput(f"{name}: dtype must be float32 or float16, got {dtype!r}")
    try:
        raw = pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidInput(f"{name}: malformed base64 ({exc})") from exc
    dt = DTYPES[str(dtype)]
    if len(raw) % dt.itemsize:
        raise InvalidInput(f"{name}: {len(raw)} bytes is not a whole number of {dtype} values")
    arr = np.frombuffer(raw, dtype=dt)
    if shape is None:
        return arr
    if not isinstance(shape, list) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise InvalidInput(f"{name}: shape must be a list of non-negative integers")
    if math.prod(shape) != arr.size:
        raise InvalidInput(f"{name}: shape {shape} does not hold {arr.size} values")
    return arr.reshape(shape)


def parse_json_model(model: type[M], body: bytes) -> M:
    """A pydantic model straight from JSON bytes; any problem is InvalidInput (400)."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidInput(validation_message(list(exc.errors(include_input=False)))) from exc


def _matrix(rows: list[Any], name: str) -> np.ndarray:
    """A list of equal-length number lists -> float32 matrix (ragged/non-numeric refused)."""
    try:
        with np.errstate(over="ignore"):  # overflow gives inf, which validation refuses
            return np.array(rows, dtype=np.float32)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{name}: expected equal-length lists of numbers") from exc


def parse_upsert(body: bytes, collection: Collection) -> UpsertBatch:
    """Parse and validate an upsert body (see `UpsertRequest`); texts are embedded here."""
    doc = _object(body)
    unknown = set(doc) - BATCH_KEYS
    if unknown:
        raise InvalidInput(f"unknown field(s) {sorted(unknown)}")
    points: list[Any] = []
    if "ids" in doc:
        keys, payloads = _columns(doc), _payload_column(doc)
    else:
        if not isinstance(doc.get("points"), list):
            raise InvalidInput("points: expected a list (or ids with vectors_b64)")
        points = doc["points"]
        keys, payloads = _point_columns(points)
    vectors = _batch_vectors(doc, points, collection)
    if len(vectors) != len(keys):
        raise InvalidInput(f"{len(keys)} points but {len(vectors)} vectors")
    return UpsertBatch(keys, vectors, payloads)


def _point_columns(points: list[Any]) -> tuple[list[str], list[dict[str, Any] | None]]:
    """Keys and payloads of a `points` list (each point checked for unknown fields)."""
    keys, payloads = [], []
    for i, p in enumerate(points):
        if type(p) is not dict or not p.keys() <= POINT_KEYS or "id" not in p:
            _point_key(p, i)  # raises the precise error
        keys.append(_key(p["id"]))
        payload = p.get("payload")
        if payload is not None and type(payload) is not dict:
            raise InvalidInput(f"points[{i}].payload: expected an object")
        _check_depth(payload, f"points[{i}].payload")
        payloads.append(payload)
    return keys, payloads


def _key(ident: object) -> str:
    return str(ident) if type(ident) is int and 0 <= ident <= U64_MAX else id_key(ident)


def _columns(doc: dict[str, Any]) -> list[str]:
    """Columnar batch: `ids` beside one `vectors_b64` (no `points`)."""
    ids = doc["ids"]
    if "points" in doc or "vectors_b64" not in doc or not isinstance(ids, list):
        raise InvalidInput("ids: a list, sent with vectors_b64 and without points")
    return [_key(i) for i in ids]


def _payload_column(doc: dict[str, Any]) -> list[dict[str, Any] | None]:
    payloads = doc.get("payloads")
    if payloads is None:
        return [None] * len(doc["ids"])
    if not isinstance(payloads, list) or len(payloads) != len(doc["ids"]):
        raise InvalidInput("payloads: a list as long as ids")
    if any(p is not None and type(p) is not dict for p in payloads):
        raise InvalidInput("payloads: objects or nulls")
    for i, p in enumerate(payloads):
        _check_depth(p, f"payloads[{i}]")
    return payloads


def _check_depth(payload: object, name: str) -> None:
    """Refuse payloads nested deeper than MAX_PAYLOAD_DEPTH (iteratively: no recursion)."""
    stack: list[tuple[object, int]] = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if type(value) is dict:
            children: Any = value.values()
        elif type(value) is list:
            children = value
        else:
            continue
        if depth > MAX_PAYLOAD_DEPTH:
            raise InvalidInput(f"{name}: nested deeper than {MAX_PAYLOAD_DEPTH} levels")
        stack.extend((child, depth + 1) for child in children)


def _object(body: bytes) -> dict[str, Any]:
    """The JSON object of a body; a large `vectors_b64` string is sliced out of the raw
    bytes instead of being copied into a Python string (base64 never needs JSON escapes)."""
    rest, b64 = _slice_b64(body)
    try:
        doc = orjson.loads(rest)
        if b64 is not None and doc.get("vectors_b64") != "":  # the slice was not the top key
            doc, b64 = orjson.loads(body), None
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(f"malformed JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidInput("expected a JSON object")
    if b64 is not None:
        doc["vectors_b64"] = b64
    return doc


def _slice_b64(body: bytes) -> tuple[bytes, memoryview | None]:
    """(body with the vectors_b64 string emptied, the string's bytes), or (body, None)."""
    at = body.find(B64_KEY)
    if at < 0:
        return body, None
    colon = body.find(b":", at + len(B64_KEY), at + len(B64_KEY) + 64)
    quote = body.find(b'"', colon + 1, colon + 64) if colon >= 0 else -1
    if quote < 0 or body[colon + 1 : quote].strip():
        return body, None
    end = body.find(b'"', quote + 1)
    if end < 0 or body.find(b"\\", quote + 1, end) >= 0:
        return body, None
    return body[: quote + 1] + body[end:], memoryview(body)[quote + 1 : end]


def _point_key(p: Any, i: int) -> None:
    """Raise the error that explains why `p` is not a point."""
    if not isinstance(p, dict):
        raise InvalidInput(f"points[{i}]: expected an object")
    unknown = set(p) - POINT_KEYS
    if unknown:
        raise InvalidInput(f"points[{i}]: unknown field(s) {sorted(unknown)}")
    raise InvalidInput(f"points[{i}]: missing id")


def _batch_vectors(doc: dict[str, Any], points: list[dict[str, Any]], c: Collection) -> Vectors:
    """Vectors from `vectors_b64` or from every point's one source (all the same kind)."""
    if "vectors_b64" in doc:
        if any(len(p) > 1 and any(s in p for s in SOURCES) for p in points):
            raise InvalidInput("with vectors_b64 the points carry no vector, vectors or text")
        data = decode_b64(
            doc["vectors_b64"], doc.get("dtype", "float32"), doc.get("shape"), "vectors_b64"
        )
        return c.vectors(data, doc.get("offsets"), "vectors_b64")
    if not points:
        return c.vectors(np.zeros((0, c.spec.dim), np.float32), [0] if c.spec.multivector else None)
    kinds = {tuple(s for s in SOURCES if s in p) for p in points}
    if len(kinds) != 1 or len(next(iter(kinds))) != 1:
        raise InvalidInput(
            "every point needs exactly one of vector, vectors, vector_b64, text (the same one)"
        )
    (source,) = next(iter(kinds))
    if source == "text":
        texts = [p["text"] for p in points]
        if not all(isinstance(t, str) for t in texts):
            raise InvalidInput("text: expected strings")
        return c.embed(texts)
    parts = [
        _point_vectors(p, source, c.spec.dim, c.spec.multivector, i) for i, p in enumerate(points)
    ]
    if not c.spec.multivector:
        return c.vectors(_matrix(parts, source))
    lengths = [len(m) for m in parts]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    data = np.concatenate(parts) if parts else np.zeros((0, c.spec.dim), np.float32)
    return c.vectors(data, offsets)


def _point_vectors(p: dict[str, Any], source: str, dim: int, multi: bool, i: int) -> Any:
    """A point's raw vector (single) or its validated (tokens, dim) matrix (multi)."""
    name = f"points[{i}].{source}"
    if source == "vector" and multi:
        raise InvalidInput(f"{name}: multi-vector collection: use vectors")
    if source == "vectors" and not multi:
        raise InvalidInput(f"{name}: single-vector collection: use vector")
    if source == "vector_b64":
        value = decode_b64(p[source], p.get("dtype", "float32"), p.get("shape"), name)
    else:
        value = p[source]
    return _tokens(value, dim, name) if multi else value


def _tokens(value: Any, dim: int, name: str) -> np.ndarray:
    """A non-empty (tokens, dim) float32 matrix; a flat array is read row by row."""
    matrix = _matrix(value, name)
    if matrix.size == 0:
        raise InvalidInput(f"{name}: empty multi-vector (a point needs at least one vector)")
    if matrix.ndim == 1 and matrix.size % dim == 0:
        matrix = matrix.reshape(-1, dim)
    if matrix.ndim != 2 or matrix.shape[1] != dim:
        raise InvalidInput(f"{name}: expected a list of {dim}-d vectors")
    return matrix


def query_vectors(req: SearchRequest, collection: Collection) -> Vectors:
    """The query of a search request as validated vectors (texts are embedded)."""
    multi = collection.spec.multivector
    if req.text is not None:
        return collection.embed([req.text], "text")
    if req.vector_b64 is not None:
        data = decode_b64(req.vector_b64, req.dtype, req.shape, "vector_b64")
        if multi:
            matrix = _tokens(data, collection.spec.dim, "vector_b64")
            return collection.vectors(matrix, [0, len(matrix)], "vector_b64")
        return collection.vectors(data, None, "vector_b64")
    if req.vectors is not None:
        if not multi:
            raise InvalidInput("vectors: single-vector collection: use vector")
        matrix = _tokens(req.vectors, collection.spec.dim, "vectors")
        return collection.vectors(matrix, [0, len(matrix)], "vectors")
    if multi:
        raise InvalidInput("vector: multi-vector collection: use vectors")
    return collection.vectors(req.vector, None, "vector")
