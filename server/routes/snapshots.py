"""Snapshots: make, list, download, delete, and restore a collection from one (by name, or
from an uploaded tarball)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import FileResponse

from core.errors import InvalidInput
from server.auth import require_read, require_write
from server.concurrency import wait_for
from server.deps import CollectionDep, PoolDep, ServiceDep
from server.errors import ERRORS_COMMON, WRITE_ERRORS, FastJSON
from server.openapi import binary_body
from server.schemas import CollectionInfo, RestoreRequest, SnapshotList, SnapshotOut, Status
from server.service.errors import DiskFull
from server.service.snapshots import SnapshotInfo
from server.service.store import disk_errors

router = APIRouter(tags=["snapshots"], responses=ERRORS_COMMON)
READ = [Depends(require_read)]
WRITE = [Depends(require_write)]
TAR = "application/x-tar"


def snapshot_body(info: SnapshotInfo) -> dict[str, object]:
    return {"name": info.name, "size_bytes": info.size_bytes, "created_at": info.created_at}


@router.post(
    "/collections/{name}/snapshots",
    summary="Make a snapshot (consistent store backup + index checkpoint, one tarball)",
    response_model=SnapshotOut,
    status_code=201,
    dependencies=WRITE,
    responses=WRITE_ERRORS,
)
async def create_snapshot(name: str, collection: CollectionDep, service: ServiceDep) -> Response:
    path: Path = await wait_for(collection.snapshot(service.snapshot_dir(name)))
    stat = path.stat()
    return FastJSON(
        snapshot_body(SnapshotInfo(path.name, stat.st_size, stat.st_mtime)), status_code=201
    )


@router.get(
    "/collections/{name}/snapshots",
    summary="List the snapshots of a collection (also after it was deleted)",
    response_model=SnapshotList,
    dependencies=READ,
)
async def list_snapshots(name: str, service: ServiceDep) -> Response:
    return FastJSON({"snapshots": [snapshot_body(s) for s in service.list_snapshots(name)]})


@router.get(
    "/collections/{name}/snapshots/{snapshot}",
    summary="Download a snapshot tarball",
    response_class=FileResponse,
    dependencies=READ,
    responses={200: {"content": {TAR: {}}, "description": "the tarball"}},
)
async def download_snapshot(name: str, snapshot: str, service: ServiceDep) -> FileResponse:
    path = service.snapshot_file(name, snapshot)
    return FileResponse(path, media_type=TAR, filename=path.name)


@router.delete(
    "/collections/{name}/snapshots/{snapshot}",
    summary="Delete a snapshot",
    response_model=Status,
    dependencies=WRITE,
)
async def delete_snapshot(name: str, snapshot: str, service: ServiceDep) -> Response:
    service.snapshot_file(name, snapshot).unlink()
    return FastJSON({"status": "deleted"})


@router.post(
    "/collections/{name}/snapshots/restore",
    summary="Restore (replace or re-create) the collection from one of its snapshots",
    response_model=CollectionInfo,
    dependencies=WRITE,
    responses=WRITE_ERRORS,
)
async def restore_snapshot(
    name: str, body: RestoreRequest, service: ServiceDep, pool: PoolDep
) -> Response:
    path = service.snapshot_file(name, body.snapshot)
    collection = await pool.run(service.restore, name, path)
    return FastJSON(await pool.run(collection.info))


@router.put(
    "/collections/{name}/snapshots/upload",
    summary="Restore (replace or create) the collection from an uploaded snapshot tarball",
    response_model=CollectionInfo,
    dependencies=WRITE,
    openapi_extra=binary_body(TAR, "a tarball made by POST /collections/{name}/snapshots"),
    responses=WRITE_ERRORS,
)
async def upload_snapshot(
    name: str, request: Request, service: ServiceDep, pool: PoolDep
) -> Response:
    path = service.upload_path()
    try:
        await _receive_file(request, path)
        collection = await pool.run(service.restore, name, path)
    finally:
        path.unlink(missing_ok=True)
    return FastJSON(await pool.run(collection.info))


async def _receive_file(request: Request, path: Path) -> None:
    """Stream the body to disk (the body-size middleware enforces the upload limit)."""
    size = 0
    try:
        with open(path, "wb") as f:
            async for chunk in request.stream():
                size += len(chunk)
                f.write(chunk)
    except OSError as exc:
        if disk_errors(exc):
            raise DiskFull("disk full while receiving a snapshot") from exc
        raise
    if size == 0:
        raise InvalidInput("empty upload: send the tarball as the request body")
