"""Points: batch upsert, get, delete (by ids or filter), scroll, count."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response

from core.errors import InvalidInput
from server.auth import require_read, require_write
from server.bodies import parse_upsert
from server.concurrency import wait_for
from server.deps import CollectionDep, PoolDep
from server.errors import ERRORS_COMMON, WRITE_ERRORS, FastJSON
from server.openapi import json_body
from server.schemas import (
    CountRequest,
    CountResponse,
    DeleteRequest,
    PointOut,
    ScrollRequest,
    ScrollResponse,
    UpsertRequest,
    WriteResponse,
)
from server.service.collection import Point
from server.service.ids import id_key, path_id_key
from server.service.writes import WriteResult

router = APIRouter(tags=["points"], responses=ERRORS_COMMON)
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]
WAIT = Query(
    True,
    description="true: return once durable and visible to search; "
    "false: return once durably logged (applied shortly after, in order)",
)


def write_body(result: WriteResult) -> dict[str, Any]:
    return {"operation_id": result.seq, "status": result.status, "count": result.count}


def point_body(point: Point) -> dict[str, Any]:
    return {
        "id": point.id,
        "version": point.version,
        "payload": point.payload,
        "vector": point.vector,
    }


@router.put(
    "/collections/{name}/points",
    summary="Insert or replace a batch of points",
    description="Vectors as JSON lists, base64 per point (`vector_b64`, `dtype`), base64 for "
    "the whole batch (`vectors_b64`, `dtype`, `shape`, multi-vector `offsets`), or `text` "
    "for collections with an embedder. A point whose id exists is replaced.",
    response_model=WriteResponse,
    dependencies=WRITE,
    openapi_extra=json_body(UpsertRequest),
    responses=WRITE_ERRORS,
)
async def upsert_points(
    collection: CollectionDep, request: Request, pool: PoolDep, wait: bool = WAIT
) -> Response:
    batch = await pool.run(parse_upsert, await request.body(), collection)
    future = collection.upsert(batch.keys, batch.vectors, batch.payloads, wait)
    return FastJSON(write_body(await wait_for(future)))


@router.get(
    "/collections/{name}/points/{point_id}",
    summary="Get one point by id",
    response_model=PointOut,
    dependencies=READ,
)
async def get_point(
    collection: CollectionDep, point_id: str, pool: PoolDep, with_vector: bool = False
) -> Response:
    point = await pool.run(collection.get, path_id_key(point_id), with_vector)
    return FastJSON(point_body(point))


@router.post(
    "/collections/{name}/points/delete",
    summary="Delete points by ids or by filter",
    response_model=WriteResponse,
    dependencies=WRITE,
    responses=WRITE_ERRORS,
)
async def delete_points(
    collection: CollectionDep, body: DeleteRequest, wait: bool = WAIT
) -> Response:
    keys = None if body.ids is None else [id_key(i) for i in body.ids]
    future = collection.delete(keys, body.filter, wait)
    return FastJSON(write_body(await wait_for(future)))


def _cursor(text: str | None) -> int:
    if text is None:
        return -1
    if not text.isdigit() or not text.isascii():
        raise InvalidInput(f"cursor {text[:40]!r}: not a cursor returned by scroll")
    return int(text)


@router.post(
    "/collections/{name}/points/scroll",
    summary="Page through points (optionally filtered), in insertion order",
    response_model=ScrollResponse,
    dependencies=READ,
)
async def scroll_points(collection: CollectionDep, body: ScrollRequest, pool: PoolDep) -> Response:
    points, cursor = await pool.run(
        collection.scroll,
        body.filter,
        _cursor(body.cursor),
        body.limit,
        body.with_payload,
        body.with_vectors,
    )
    next_cursor = None if cursor is None else str(cursor)
    return FastJSON({"points": [point_body(p) for p in points], "next_cursor": next_cursor})


@router.post(
    "/collections/{name}/points/count",
    summary="Count points (optionally filtered)",
    response_model=CountResponse,
    dependencies=READ,
)
async def count_points(
    collection: CollectionDep, pool: PoolDep, body: CountRequest | None = None
) -> Response:
    flt = body.filter if body is not None else None
    return FastJSON({"count": await pool.run(collection.count, flt)})
