"""Dependencies handed to route handlers (everything lives on app.state, set in lifespan)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request

from server.concurrency import CpuPool
from server.metrics import Metrics
from server.service.collection import Collection
from server.service.errors import Unavailable
from server.service.registry import Service
from server.settings import Settings


async def get_settings(request: Request) -> Settings:
    """The settings the app was built with (read once, at start)."""
    settings: Settings = request.app.state.settings
    return settings


def ready_service(request: Request) -> Service:
    """The service, once its collections are loaded (503 before)."""
    return loaded_service(request.app.state)


def loaded_service(state: Any) -> Service:
    """The service on an app's state, once its collections are loaded (503 before)."""
    service: Service | None = getattr(state, "service", None)
    if service is None or not service.ready:
        raise Unavailable("the server is loading its collections")
    return service


async def get_service(request: Request) -> Service:
    return ready_service(request)


async def get_pool(request: Request) -> CpuPool:
    return request.app.state.pool


async def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def get_collection(
    name: str, service: Annotated[Service, Depends(get_service)]
) -> Collection:
    """The collection named in the path (400 for a bad name, 404 for an unknown one)."""
    return service.get(name)


SettingsDep = Annotated[Settings, Depends(get_settings)]
ServiceDep = Annotated[Service, Depends(get_service)]
PoolDep = Annotated[CpuPool, Depends(get_pool)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
CollectionDep = Annotated[Collection, Depends(get_collection)]
