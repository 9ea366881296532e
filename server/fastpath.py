"""The hottest route, `POST /collections/{name}/search`, answered before FastAPI's middleware
stack (`PithApp.__call__`): per request the event loop only reads the body, checks the key,
finds the collection and hands the raw bytes to the search dispatcher; parsing, the search and
the JSON encoding of the answer run on a search thread (routes.search.answer_jobs). Measured:
the six ASGI layers and the pydantic parse on the loop cost more than the search itself.

What the stack does for every other route is done here too: the body limit (413), request
metrics under the route template, the one JSON error shape, and a logged 500 for the
unexpected. The FastAPI route stays: it documents the endpoint in OpenAPI and serves the
requests this path passes on (all of them when CORS is on, so CORS headers are never lost)."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Mapping

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from core.errors import PithError
from server.auth import readable_collection
from server.dispatch import Receiver
from server.errors import error_response
from server.limits import content_length, refusal

log = logging.getLogger("pith.fastpath")
SEARCH = re.compile(r"^/collections/([^/]+)/search$")
SEARCH_ROUTE = "/collections/{name}/search"
JSON_HEADERS = [(b"content-type", b"application/json")]


class PithApp(FastAPI):
    """FastAPI, with the search route's fast path in front of the middleware stack."""

    fast_search = True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.fast_search and scope["type"] == "http" and scope["method"] == "POST":
            match = SEARCH.match(scope["path"])
            if match is not None:
                scope["app"] = self
                await fast_search(self, scope, receive, send, match.group(1))
                return
        await super().__call__(scope, receive, send)


async def fast_search(app: FastAPI, scope: Scope, receive: Receive, send: Send, name: str) -> None:
    start = time.perf_counter()
    status = 500
    try:
        limit = app.state.settings.max_body_bytes
        declared = content_length(scope)
        if declared is not None and declared > limit:
            status = await _send_refusal(scope, receive, send, limit)
            return
        body = await _read_body(receive, limit)
        if body is None:
            status = await _send_refusal(scope, receive, send, limit)
            return
        answer = await start_search(app, Headers(scope=scope), name, body)
        status = 200
        headers = [*JSON_HEADERS, (b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
    except ClientDisconnect:
        status = 499  # nobody reads an answer; counted as nginx counts it
    except PithError as exc:
        status = exc.status
        await error_response(exc)(scope, receive, send)
    except Exception:
        log.exception("unhandled error on POST %s", scope.get("path"))
        await error_response(PithError("internal error"))(scope, receive, send)
    finally:
        app.state.metrics.request_done("POST", SEARCH_ROUTE, status, time.perf_counter() - start)


def queue_search(
    app: FastAPI, headers: Mapping[str, str], name: str, body: bytes, receiver: Receiver[bytes]
) -> None:
    """Auth and collection lookup (PithError when refused), then the raw body queued for the
    search threads; `receiver` gets the encoded answer, or the request's error. Every search
    route comes through here: this ASGI path, the FastAPI route and server/protocol.py."""
    collection = readable_collection(app.state, headers, name)
    app.state.dispatcher.post((collection, body), receiver)


def start_search(
    app: FastAPI, headers: Mapping[str, str], name: str, body: bytes
) -> asyncio.Future[bytes]:
    """queue_search with a future for the answer."""
    future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
    queue_search(app, headers, name, body, future)
    return future


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole body, or None once it passes `limit` bytes (the rest is not read)."""
    chunks: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        seen += len(chunk)
        if seen > limit:
            return None
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_refusal(scope: Scope, receive: Receive, send: Send, limit: int) -> int:
    response = refusal(limit)
    await response(scope, receive, send)
    return response.status_code
