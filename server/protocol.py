"""uvicorn's httptools protocol, with two savings for small JSON answers.

SearchProtocol answers plain searches on the connection itself (SearchCycle, below): measured,
uvicorn's per-request ASGI machinery (scope, cycle, task, receive/send messages) cost the
event loop's thread more than the rest of the request, and that thread is the server's limit.

CoalescingProtocol sends each response's head and body in one write.

uvicorn writes the status line and headers when the app sends `http.response.start`, and the
body in a second write: two send() calls, two TCP segments and two wake-ups of the client per
small JSON answer. Here the head waits for the first body write (or the end of the response,
for HEAD) and goes out with it. A `100 Continue` (written before the response starts) is not
held."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import (
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)

from core.errors import PithError
from server.errors import error_response
from server.fastpath import JSON_HEADERS, SEARCH_ROUTE, PithApp, queue_search
from server.searchpool import SearchProcesses

log = logging.getLogger("pith.protocol")


class HeadWithBody:
    """The transport of one request/response cycle, holding the head for the body."""

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if not self._cycle.response_started:
            self._transport.write(data)  # 100 Continue
        elif not self._head_seen:
            self._head_seen = True
            self._head = data
        elif self._head is not None:
            self._transport.write(self._head + data)
            self._head = None
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """For `uvicorn.run(..., http=CoalescingProtocol)`."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle is before:  # an upgrade request: no new cycle
            return
        transport = HeadWithBody(cycle.transport, cycle)
        cycle.transport = transport  # type: ignore[assignment]
        cycle.on_response = _flushing(transport, cycle.on_response)


def _flushing(transport: HeadWithBody, on_response: Callable[[], None]) -> Callable[[], None]:
    def done() -> None:
        transport.flush()  # a HEAD answer has no body write to carry its head
        on_response()

    return done


class _NoEvent:
    """Stands in for a cycle's message event: a fast search waits on no ASGI receive()."""

    def set(self) -> None:
        pass


NO_EVENT = _NoEvent()
FAST_URL = re.compile(rb"^/collections/([A-Za-z0-9_.-]+)/search$")


class SearchCycle:
    """One `POST /collections/{name}/search` answered without ASGI: the body is collected by
    the parser callbacks, queued for the search threads, and the answer written when the
    dispatcher settles its batch on the loop (the cycle is its own Receiver); no scope, task,
    future, coroutine or middleware per request. Carries the attributes
    HttpToolsProtocol reads of a cycle (pipelining, disconnects, graceful shutdown)."""

    def __init__(self, protocol: SearchProtocol, name: str, keep_alive: bool) -> None:
        self.protocol = protocol
        self.name = name
        self.headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in protocol.headers}
        self.keep_alive = keep_alive
        self.body = b""
        self.more_body = True
        self.active = False
        self.response_complete = False
        self.disconnected = False
        self.message_event = NO_EVENT
        self.started_at = time.perf_counter()

    async def run_asgi(self, app: Any) -> None:
        """A pipelined request's turn (HttpToolsProtocol starts queued cycles this way)."""
        self.activate()

    def activate(self) -> None:
        self.active = True
        self._start_if_ready()

    def body_done(self) -> None:
        self.more_body = False
        self._start_if_ready()

    def _start_if_ready(self) -> None:
        if not self.active or self.more_body:
            return
        try:
            queue_search(self.protocol.pith_app, self.headers, self.name, self.body, self)
        except Exception as exc:
            self._fail(exc)

    # the dispatcher's Receiver: called on the event loop with the answer -----------------------
    def cancelled(self) -> bool:
        return False  # a lost connection is counted (499) when its answer comes

    def set_result(self, answer: bytes) -> None:
        self._respond(200, JSON_HEADERS, answer)

    def set_exception(self, error: BaseException) -> None:
        self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if not isinstance(error, PithError):
            log.error("unhandled error on POST %s", self.protocol.url, exc_info=error)
        self._respond(*error_answer(error))

    def _respond(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        protocol = self.protocol
        if self.disconnected:
            status = 499  # nobody reads the answer; counted as nginx counts it
        else:
            defaults = protocol.server_state.default_headers
            protocol.transport.write(answer_bytes(status, defaults, headers, body, self.keep_alive))
        self.response_complete = True
        elapsed = time.perf_counter() - self.started_at
        protocol.pith_app.state.metrics.request_done("POST", SEARCH_ROUTE, status, elapsed)
        if not self.keep_alive:
            protocol.transport.close()
        protocol.on_response_complete()


def answer_bytes(
    status: int,
    defaults: list[tuple[bytes, bytes]],
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    keep_alive: bool = True,
) -> bytes:
    """Status line, the server's default headers (date, server), the answer's own, a
    Content-Length unless it has one (and `connection: close` when not kept alive), then the
    body: a search answer as this server writes it (search processes write the same)."""
    parts = [STATUS_LINE[status]]
    extra = [] if keep_alive else [(b"connection", b"close")]
    if not any(name == b"content-length" for name, _ in headers):
        extra.append((b"content-length", str(len(body)).encode()))
    for name, value in [*defaults, *headers, *extra]:
        parts += [name, b": ", value, b"\r\n"]
    parts += [b"\r\n", body]
    return b"".join(parts)


def error_answer(error: BaseException) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """(status, headers, body) of the one JSON error shape for a search that failed with
    `error` (anything not a PithError is an internal error)."""
    if not isinstance(error, PithError):
        error = PithError("internal error")
    response = error_response(error)
    return response.status_code, list(response.raw_headers), bytes(response.body)


class SearchProtocol(CoalescingProtocol):
    """CoalescingProtocol that answers plain searches itself (SearchCycle) and hands every
    other request to the ASGI app. Plain: POST to /collections/{name}/search with no query
    string, a Content-Length within the body limit, no Expect or Transfer-Encoding header,
    the access log off and the app's fast path on (off with CORS). Bind it to the app with
    `protocol_for(app)`."""

    pith_app: PithApp
    prefix: bytes | None = None  # what a search process read before handing the connection back
    handed_off = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        """A new connection goes to a search process (server/searchpool.py) unless it came
        back from one; one that came back is read from the bytes the process had read."""
        if self.prefix is None and self._hand_off(transport):
            self.handed_off = True
            transport.abort()  # our descriptor only: the process's keeps the connection
            return
        super().connection_made(transport)
        if self.prefix:
            data, self.prefix = self.prefix, b""
            self.data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handed_off:
            super().connection_lost(exc)

    def _hand_off(self, transport: asyncio.Transport) -> bool:
        pool = getattr(self.pith_app.state, "dispatcher", None)
        if not isinstance(pool, SearchProcesses) or not self.pith_app.fast_search:
            return False
        if self.access_log or self.root_path:  # the server's own stack logs and rewrites
            return False
        sock = transport.get_extra_info("socket")
        if sock is None or transport.get_extra_info("sslcontext") is not None:
            return False  # the processes speak plain HTTP
        if pool.protocol_factory is None:
            pool.take_connections(self._factory(), self.config.encoded_headers)
        return pool.hand_off(sock.fileno())

    def _factory(self) -> Callable[[bytes], SearchProtocol]:
        """Protocols like this one, for connections handed back with the bytes read."""
        cls, config, state, app_state = type(self), self.config, self.server_state, self.app_state

        def make(prefix: bytes) -> SearchProtocol:
            protocol = cls(config=config, server_state=state, app_state=app_state)
            protocol.prefix = prefix
            return protocol

        return make

    def on_headers_complete(self) -> None:
        name = self._plain_search()
        if name is None:
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        cycle = SearchCycle(self, name, keep_alive)
        existing = self.cycle
        self.cycle = cycle  # type: ignore[assignment]
        if existing is None or existing.response_complete:
            cycle.activate()
        else:  # pipelined behind an unfinished answer: its turn comes in on_response_complete
            self.flow.pause_reading()
            self.pipeline.appendleft((cycle, self.app))  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        if isinstance(self.cycle, SearchCycle):
            self.cycle.body += body  # bounded: Content-Length was checked against the limit
        else:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if isinstance(self.cycle, SearchCycle):
            self.cycle.body_done()
        else:
            super().on_message_complete()

    def _plain_search(self) -> str | None:
        app = self.pith_app
        if not app.fast_search or self.access_log or self.expect_100_continue:
            return None
        if self.parser.get_method() != b"POST" or self.parser.should_upgrade():
            return None
        match = FAST_URL.match(self.url)
        if match is None or self.root_path:
            return None
        length = None
        for header, value in self.headers:
            if header == b"content-length":
                length = int(value) if value.isdigit() else None
            elif header == b"transfer-encoding":
                return None
        if length is None or length > app.state.settings.max_body_bytes:
            return None
        return match.group(1).decode("ascii")


def protocol_for(app: PithApp) -> type[SearchProtocol]:
    """The uvicorn `http=` protocol class serving `app`'s fast searches."""
    return type("PithProtocol", (SearchProtocol,), {"pith_app": app})
