"""Collections: create (idempotent), list, describe, delete, train."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from pydantic import ValidationError

from core.errors import InvalidSpec
from server.auth import require_read, require_write
from server.concurrency import wait_for
from server.deps import CollectionDep, PoolDep, ServiceDep
from server.errors import ERRORS_COMMON, WRITE_ERRORS, FastJSON, error_doc, validation_message
from server.openapi import json_body
from server.schemas import CollectionInfo, CollectionList, Status, TrainResponse
from server.service.spec import CollectionSpec

router = APIRouter(tags=["collections"], responses=ERRORS_COMMON)
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]


def parse_spec(body: bytes) -> CollectionSpec:
    """A collection spec from JSON; anything wrong with it is an invalid spec (422)."""
    try:
        spec = CollectionSpec.model_validate_json(body or b"{}")
    except ValidationError as exc:
        raise InvalidSpec(validation_message(list(exc.errors()))) from exc
    except ValueError as exc:
        raise InvalidSpec(str(exc)) from exc
    return spec


@router.put(
    "/collections/{name}",
    summary="Create a collection (idempotent for the same spec)",
    response_model=CollectionInfo,
    status_code=201,
    dependencies=WRITE,
    openapi_extra=json_body(CollectionSpec),
    responses={
        200: {"model": CollectionInfo, "description": "exists already with this spec"},
        409: error_doc("exists with another spec"),
        422: error_doc("invalid spec"),
        **WRITE_ERRORS,
    },
)
async def create_collection(
    name: str, request: Request, service: ServiceDep, pool: PoolDep
) -> Response:
    spec = parse_spec(await request.body())
    collection, created = await pool.run(service.create, name, spec)
    info = await pool.run(collection.info)
    return FastJSON(info, status_code=201 if created else 200)


@router.get(
    "/collections",
    summary="List collections",
    response_model=CollectionList,
    dependencies=READ,
)
async def list_collections(service: ServiceDep) -> Response:
    return FastJSON({"collections": service.names()})


@router.get(
    "/collections/{name}",
    summary="Describe a collection: spec, points, bytes, training state",
    response_model=CollectionInfo,
    dependencies=READ,
)
async def get_collection(collection: CollectionDep, pool: PoolDep) -> Response:
    return FastJSON(await pool.run(collection.info))


@router.delete(
    "/collections/{name}",
    summary="Delete a collection and its data (its snapshots are kept)",
    response_model=Status,
    dependencies=WRITE,
    responses=WRITE_ERRORS,
)
async def delete_collection(name: str, service: ServiceDep, pool: PoolDep) -> Response:
    await pool.run(service.delete, name)
    return FastJSON({"status": "deleted"})


@router.post(
    "/collections/{name}/train",
    summary="Train (or re-train) the encoder and index now, in the background",
    response_model=TrainResponse,
    status_code=202,
    dependencies=WRITE,
    responses={200: {"model": TrainResponse, "description": "wait=true: trained"}, **WRITE_ERRORS},
)
async def train_collection(collection: CollectionDep, wait: bool = False) -> Response:
    future = collection.train()
    if wait:
        await wait_for(future)
        return FastJSON({"state": collection.st.training.state}, status_code=200)
    return FastJSON({"state": collection.st.training.state}, status_code=202)
