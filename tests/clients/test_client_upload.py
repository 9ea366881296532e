"""Uploads through a flaky proxy (503s, answers lost after the write went through, refused
connections) into a live server: retried with backoff, idempotent (each id once, with its
own vector and payload), and permanent errors are not retried."""

from __future__ import annotations

import collections
import http.server
import threading
from collections.abc import Iterator

import httpx
import numpy as np
import pytest
from client_helpers import LiveServer, free_port, rows
from pith_client import AsyncClient, Client
from pith_client.errors import ConnectionFailed, InvalidInput, Unavailable

UNAVAILABLE = b'{"error": {"code": "not_ready", "message": "proxy says: try later"}}'


class FlakyProxy:
    """Forwards to `upstream`; each distinct point write gets, on its 1st try, a 503 (not
    forwarded) and on its 2nd try is forwarded but its answer dropped (the connection closed
    without a reply); the 3rd try goes through."""

    def __init__(self, upstream: str, always_503: bool = False) -> None:
        self.tries: collections.Counter[bytes] = collections.Counter()
        self.lock = threading.Lock()
        self.forwarded = 0
        self.http = httpx.Client(base_url=upstream, timeout=60)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _handle(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                proxy.answer(self, body)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.always_503 = always_503
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, handler: http.server.BaseHTTPRequestHandler, body: bytes) -> None:
        with self.lock:
            self.tries[body] += 1
            tries = self.tries[body]
        turn = tries - 1 if handler.path.split("?")[0].endswith("/points") else 2
        if self.always_503 or turn == 0:
            handler.send_response(503)
            handler.send_header("content-type", "application/json")
            handler.send_header("content-length", str(len(UNAVAILABLE)))
            handler.end_headers()
            handler.wfile.write(UNAVAILABLE)
            return
        headers = {"content-type": "application/json"}
        response = self.http.request(handler.command, handler.path, content=body, headers=headers)
        self.forwarded += 1
        if turn == 1:  # the write happened; the client never hears of it
            handler.close_connection = True
            return
        handler.send_response(response.status_code)
        handler.send_header("content-type", "application/json")
        handler.send_header("content-length", str(len(response.content)))
        handler.end_headers()
        handler.wfile.write(response.content)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()


@pytest.fixture
def proxy(live_server: LiveServer) -> Iterator[FlakyProxy]:
    flaky = FlakyProxy(live_server.url)
    yield flaky
    flaky.close()


def check_uploaded(direct: Client, name: str, x: np.ndarray) -> None:
    points = list(direct.scroll(name, batch_size=500, with_vectors=True))
    assert sorted(p.id for p in points) == list(range(len(x)))  # each id exactly once
    for p in points[::37]:
        assert p.payload == {"row": p.id}
        np.testing.assert_allclose(p.vector, x[p.id].astype(np.float16), atol=1e-3)


def test_upload_retries_through_503_and_lost_answers(
    live_server: LiveServer, proxy: FlakyProxy
) -> None:
    x = rows(1500, 8, seed=21)
    direct = Client(live_server.url)
    direct.create_collection("up_sync", dim=8, metric="ip")
    flaky = Client(proxy.url, backoff_s=0.01)
    payloads = [{"row": i} for i in range(len(x))]
    written = flaky.upload("up_sync", np.arange(len(x)), x, payloads, batch_size=100, parallel=3)
    assert written == len(x)
    assert flaky.transport.retried == 2 * (len(x) // 100)  # a 503 and a lost answer each
    assert direct.count("up_sync") == len(x)
    check_uploaded(direct, "up_sync", x)
    flaky.close()
    direct.close()


async def _async_upload(url: str, x: np.ndarray) -> tuple[int, int]:
    async with AsyncClient(url, backoff_s=0.01) as client:
        payloads = [{"row": i} for i in range(len(x))]
        written = await client.upload("up_async", None, x, payloads, batch_size=64, parallel=4)
        return written, client.transport.retried


def test_async_upload_retries_too(live_server: LiveServer, proxy: FlakyProxy) -> None:
    import asyncio

    x = rows(700, 8, seed=22)
    direct = Client(live_server.url)
    direct.create_collection("up_async", dim=8, metric="ip")
    written, retried = asyncio.run(_async_upload(proxy.url, x))
    assert written == len(x) and retried == 2 * 11
    check_uploaded(direct, "up_async", x)
    direct.close()


def test_gives_up_after_max_retries(live_server: LiveServer) -> None:
    down = FlakyProxy(live_server.url, always_503=True)
    client = Client(down.url, backoff_s=0.001)
    with pytest.raises(Unavailable, match="try later"):
        client.upload("anything", None, rows(10, 8, seed=1), max_retries=4)
    assert client.transport.retried == 4 and down.forwarded == 0
    down.close()
    client.close()


def test_permanent_errors_are_not_retried(live_server: LiveServer) -> None:
    client = Client(live_server.url, backoff_s=0.001)
    client.create_collection("up_dim", dim=8)
    with pytest.raises(InvalidInput, match="dimension"):
        client.upload("up_dim", None, rows(10, 9, seed=1))
    assert client.transport.retried == 0
    with pytest.raises(InvalidInput, match="payloads"):
        client.upload("up_dim", None, rows(10, 8, seed=1), [{}] * 9)
    client.close()


def test_unreachable_server_is_a_connection_error() -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", retries=2, backoff_s=0.001)
    with pytest.raises(ConnectionFailed):
        client.count("x")
    assert client.transport.retried == 2


def test_only_transient_errors_count_as_transient() -> None:
    from pith_client.errors import HTTPError, ReadOnlyStorage, error_from
    from pith_client.transport import transient

    assert transient(httpx.ConnectError("refused"))
    assert transient(error_from("not_ready", "loading", 503))
    assert transient(HTTPError("bad gateway", 502))
    assert not transient(ReadOnlyStorage("read-only disk"))
    assert not transient(error_from("invalid_input", "dim", 400))
    assert not transient(HTTPError("teapot", 418))
