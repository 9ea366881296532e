"""A routing shortcut for the hottest route, `POST /collections/{name}/search`: pure ASGI,
straight to the same handler the FastAPI route runs (`routes.search.search_response`),
skipping FastAPI's per-request routing, dependency and exception layers, which cost more
than the search itself at high request rates. The FastAPI route stays: it documents the
endpoint in OpenAPI and serves any request this shortcut passes on."""

from __future__ import annotations

import logging
import re

from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from core.errors import PithError
from server.errors import error_response
from server.routes.search import search_response

log = logging.getLogger("pith.fastpath")
SEARCH = re.compile(r"^/collections/([^/]+)/search$")


class SearchFastPath:
    def __init__(self, app: ASGIApp, route: BaseRoute | None = None) -> None:
        self.app = app
        self.route = route  # reported in metrics as the route template

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = SEARCH.match(scope.get("path", "")) if scope["type"] == "http" else None
        if match is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route
        request = Request(scope, receive)
        try:
            response = await search_response(request, match.group(1))
        except PithError as exc:
            response = error_response(exc)
        except Exception:
            log.exception("unhandled error on POST %s", scope.get("path"))
            response = error_response(PithError("internal error"))
        await response(scope, receive, send)
