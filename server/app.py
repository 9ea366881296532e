"""The FastAPI application: built by `create_app(settings)`; state lives on app.state (so two
apps can run side by side in one process); collections load in the background after start."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from server.concurrency import CpuPool
from server.demo import ensure_demo
from server.dispatch import RoutedDispatcher, SearchDispatcher
from server.errors import install_error_handlers
from server.fastpath import PithApp
from server.limits import BodyLimit
from server.metrics import Metrics, RequestMetrics
from server.openapi import install_openapi
from server.routes import collections, ops, points, search, snapshots
from server.schemas import SearchRequest, UpsertRequest
from server.searchpool import SearchProcesses
from server.service.embedders import Embedders
from server.service.registry import Service
from server.service.spec import CollectionSpec
from server.settings import Settings

log = logging.getLogger("pith.app")
VERSION = "0.1.0"
# FastAPI's built-in OpenTelemetry spans cost per request; pith exports Prometheus metrics.
NO_TELEMETRY: Any = {"tracing": False, "metrics": False, "logs": False, "operation_spans": False}


async def _start(app: FastAPI, service: Service, settings: Settings) -> None:
    """Open every collection (and the demo), then declare the service ready."""
    try:
        await anyio.to_thread.run_sync(service.open_all)
        if settings.demo:
            await anyio.to_thread.run_sync(ensure_demo, service, settings.demo_size, settings.seed)
        service.ready = True
        if isinstance(app.state.dispatcher, SearchProcesses):
            app.state.dispatcher.start()
        log.info("ready: %d collection(s)", len(service.names()))
    except Exception:
        log.exception("start-up failed; /readyz stays 503")


def _service(app: FastAPI, settings: Settings) -> Any:
    """The collections this app serves: a data folder, or a Ray cluster (--cluster)."""
    if settings.cluster:
        from cluster.service import cluster_service  # Ray loads only in cluster mode

        return cluster_service(settings, app.state.embedders)
    return Service(settings.data, settings.options(), app.state.metrics, app.state.embedders)


def _multivector(job: search.SearchJob) -> bool:
    return bool(job[0].spec.multivector)


def _dispatcher(app: FastAPI, settings: Settings, service: Any) -> Any:
    """Search threads in this process; in front of them, for a local data folder served with
    the stock embedders, the search processes (server/searchpool.py)."""
    local = RoutedDispatcher(
        SearchDispatcher(
            settings.search_threads, search.answer_jobs, omp_threads=settings.search_team()
        ),
        SearchDispatcher(settings.multivector_search_threads, search.answer_jobs),
        _multivector,
    )
    processes = settings.search_process_count()
    if processes == 0 or not isinstance(service, Service) or app.state.custom_embedders:
        return local
    return SearchProcesses(
        service.root, processes, local, service.collections, settings, app.state.metrics
    )


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    app.state.pool = CpuPool(settings.cpu_threads)
    service = _service(app, settings)
    app.state.dispatcher = _dispatcher(app, settings, service)
    app.state.service = service
    app.state.metrics.watch(lambda: [c.info() for c in service.collections()])
    starting = asyncio.create_task(_start(app, service, settings))
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            await starting
        app.state.dispatcher.close()
        await anyio.to_thread.run_sync(service.close_all)


def create_app(settings: Settings, embedders: Embedders | None = None) -> PithApp:
    """The app for these settings (`embedders` lets tests substitute a small embedder)."""
    app = PithApp(title="pith", version=VERSION, lifespan=lifespan, telemetry=NO_TELEMETRY)
    app.state.settings = settings
    app.state.metrics = Metrics()
    app.state.embedders = embedders or Embedders()
    app.state.custom_embedders = embedders is not None  # search processes load the stock ones
    install_error_handlers(app)
    for module in (search, points, collections, snapshots, ops):  # hot routes match first
        app.include_router(module.router)
    install_openapi(app, [CollectionSpec, UpsertRequest, SearchRequest])
    app.add_middleware(
        BodyLimit, max_bytes=settings.max_body_bytes, max_upload_bytes=settings.max_upload_bytes
    )
    if settings.cors_origins:
        app.fast_search = False  # every request through the CORS middleware
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["*"],
            allow_headers=["*"],
        )
    app.add_middleware(RequestMetrics, metrics=app.state.metrics)
    return app


def app_factory() -> Any:
    """For `uvicorn --factory server.app:app_factory` (settings from PITH_* variables)."""
    return create_app(Settings())  # type: ignore[call-arg]  # values come from PITH_*
