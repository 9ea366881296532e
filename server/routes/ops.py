"""Operations: liveness, readiness, Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST

from server.auth import require_read
from server.deps import MetricsDep
from server.errors import FastJSON, error_doc
from server.schemas import Readiness, Status
from server.service.errors import Unavailable

router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="Liveness: the process answers", response_model=Status)
async def healthz() -> Response:
    return FastJSON({"status": "ok"})


@router.get(
    "/readyz",
    summary="Readiness: 200 once every collection is loaded, 503 before",
    response_model=Readiness,
    responses={503: error_doc("still loading")},
)
async def readyz(request: Request) -> Response:
    service = getattr(request.app.state, "service", None)
    if service is None or not service.ready:
        raise Unavailable("loading collections")
    body = {"status": "ready", "load_s": service.load_s, "failed": service.failed}
    if getattr(service, "read_only", False):
        body["read_only"] = True  # reads are served, writes refused with 503 read_only
    return FastJSON(body)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    dependencies=[Depends(require_read)],
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "text exposition"}},
)
async def metrics(metrics: MetricsDep) -> Response:
    return Response(metrics.render(), media_type=CONTENT_TYPE_LATEST)
