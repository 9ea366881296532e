"""SearchProtocol (server/protocol.py) driven byte by byte on a recording transport, with an
app whose search threads are a stub: which requests it answers itself (never calling the ASGI
app), in what order pipelined answers go out, and when it closes the connection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from core.errors import NotFound
from server.dispatch import Receiver
from server.fastpath import PithApp
from server.protocol import SearchProtocol, protocol_for
from server.settings import Settings

ANSWER = b'{"hits":[]}'


class Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 9) if name in ("sockname", "peername") else default


class Service:
    ready = True

    def get(self, name: str) -> str:
        if name != "c":
            raise NotFound(f"no collection {name!r}")
        return name


class Dispatcher:
    """Answers when told to, so a test can hold a search in flight."""

    def __init__(self) -> None:
        self.waiting: list[tuple[bytes, Receiver[bytes]]] = []

    def post(self, item: tuple[str, bytes], receiver: Receiver[bytes]) -> None:
        self.waiting.append((item[1], receiver))

    def answer_all(self) -> None:
        for body, receiver in self.waiting:
            if not receiver.cancelled():
                receiver.set_result(ANSWER[:-1] + b',"for":' + body + b"}")
        self.waiting.clear()


class Metrics:
    def __init__(self) -> None:
        self.done: list[int] = []

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        self.done.append(status)


class App(PithApp):
    """A PithApp whose ASGI side only records that it was called."""

    asgi_calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        App.asgi_calls += 1
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()


def connect(loop: asyncio.AbstractEventLoop) -> tuple[SearchProtocol, Transport, App]:
    app = App()
    App.asgi_calls = 0
    app.state.settings = Settings(api_key="k", max_body_bytes=2048)
    app.state.service = Service()
    app.state.dispatcher = Dispatcher()
    app.state.metrics = Metrics()
    config = Config(app=app, log_level="warning", access_log=False, proxy_headers=False)
    config.load()
    protocol = protocol_for(app)(config, ServerState(), app_state={}, _loop=loop)
    transport = Transport()
    protocol.connection_made(transport)
    return protocol, transport, app


def search(body: bytes, path: str = "/collections/c/search", extra: bytes = b"") -> bytes:
    head = b"POST %s HTTP/1.1\r\nHost: t\r\napi-key: k\r\nContent-Length: %d\r\n" % (
        path.encode(),
        len(body),
    )
    return head + extra + b"\r\n" + body


def feed(loop: asyncio.AbstractEventLoop, protocol: SearchProtocol, data: bytes) -> None:
    """Bytes arriving on the connection, handled on the running loop (as uvicorn does)."""
    loop.call_soon(protocol.data_received, data)
    settle(loop)


def settle(loop: asyncio.AbstractEventLoop) -> None:
    for _ in range(5):
        loop.run_until_complete(asyncio.sleep(0))


def answers(transport: Transport) -> list[bytes]:
    return [w.split(b"\r\n\r\n", 1)[1] for w in transport.writes]


def test_plain_search_is_answered_without_the_asgi_app(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport, app = connect(loop)
    feed(loop, protocol, search(b'"q1"'))
    app.state.dispatcher.answer_all()
    settle(loop)
    assert App.asgi_calls == 0 and len(transport.writes) == 1  # head and body: one write
    head = transport.writes[0].split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 200 ok") and b"content-type: application/json" in head
    assert answers(transport) == [b'{"hits":[],"for":"q1"}']
    assert b"content-length: %d" % len(answers(transport)[0]) in head
    assert app.state.metrics.done == [200] and not transport.closed


@pytest.mark.parametrize(
    "request_bytes",
    [
        search(b"{}", "/collections/c/search?x=1"),  # a query string
        search(b"{}", extra=b"Expect: 100-continue\r\n"),
        search(b"x" * 3000),  # declared over the body limit: the middleware answers
        b"POST /collections/c/search HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"2\r\n{}\r\n0\r\n\r\n",
        b"GET /collections/c HTTP/1.1\r\nHost: t\r\n\r\n",
    ],
)
def test_other_requests_go_to_the_asgi_app(
    loop: asyncio.AbstractEventLoop, request_bytes: bytes
) -> None:
    protocol, _, app = connect(loop)
    feed(loop, protocol, request_bytes)
    assert App.asgi_calls == 1 and not app.state.dispatcher.waiting


def test_pipelined_requests_are_answered_in_order(loop: asyncio.AbstractEventLoop) -> None:
    protocol, transport, app = connect(loop)
    get = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    feed(loop, protocol, search(b'"a"') + get + search(b'"b"'))
    assert len(app.state.dispatcher.waiting) == 1 and not transport.writes
    assert not transport.reading  # held back until the first answer is out
    app.state.dispatcher.answer_all()
    settle(loop)  # the GET is answered by the ASGI app, then "b" is queued
    app.state.dispatcher.answer_all()
    settle(loop)
    statuses = [w.split(b" ", 2)[1] for w in transport.writes]
    assert statuses == [b"200", b"204", b"200"] and App.asgi_calls == 1
    assert answers(transport)[0].endswith(b'"a"}') and answers(transport)[2].endswith(b'"b"}')
    assert transport.reading


def test_errors_get_the_json_shape_and_connection_close_is_kept(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport, app = connect(loop)
    feed(loop, protocol, search(b"{}", "/collections/nope/search"))
    assert transport.writes[0].startswith(b"HTTP/1.1 404 ")
    assert answers(transport)[0].startswith(b'{"error":{"code":"not_found"')
    anonymous = search(b"{}").replace(b"api-key: k\r\n", b"")
    feed(loop, protocol, anonymous.replace(b"Host: t", b"Host: t\r\nConnection: close"))
    assert transport.writes[1].startswith(b"HTTP/1.1 401 ")
    head = transport.writes[1].split(b"\r\n\r\n")[0].lower()
    assert b"www-authenticate: bearer" in head and b"connection: close" in head
    assert transport.closed and app.state.metrics.done == [404, 401]


def test_a_lost_connection_is_counted_and_not_written_to(
    loop: asyncio.AbstractEventLoop,
) -> None:
    protocol, transport, app = connect(loop)
    feed(loop, protocol, search(b'"q"'))
    protocol.connection_lost(None)
    transport.writes.clear()
    app.state.dispatcher.answer_all()
    settle(loop)
    assert transport.writes == [] and app.state.metrics.done == [499]
