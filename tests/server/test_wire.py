"""The search fast path (server/fastpath.py) and the response writer (server/protocol.py) on
the wire: a real `python -m server serve` spoken to over raw sockets where the byte stream
matters (pipelining, HEAD, Expect: 100-continue), and the fast path's duties that the
middleware stack does for other routes (metrics, body limit, auth, errors, CORS)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from server_helpers import searches_counted, unit_rows
from test_e2e import Server

from server.protocol import HeadWithBody

DIM = 8
KEY, READ_KEY = "wire-secret", "wire-read"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data = tmp_path_factory.mktemp("wire") / "data"
    env = {
        "PITH_API_KEY": KEY,
        "PITH_READ_ONLY_API_KEY": READ_KEY,
        "PITH_MAX_BODY_BYTES": "4096",
    }
    srv = Server(data, **env)
    http = httpx.Client(base_url=srv.url, headers={"api-key": KEY})
    assert http.put("/collections/c", json={"dim": DIM, "metric": "ip"}).status_code == 201
    x = unit_rows(20, DIM, seed=5)
    points = [{"id": i, "vector": v, "payload": {"i": i}} for i, v in enumerate(x.tolist())]
    assert http.put("/collections/c/points", json={"points": points}).status_code == 200
    yield srv
    srv.stop(9)


def search_body(seed: int, k: int = 3) -> bytes:
    return orjson.dumps({"vector": unit_rows(1, DIM, seed=seed)[0].tolist(), "k": k})


def request(method: str, path: str, body: bytes = b"", extra: str = "") -> bytes:
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: t\r\napi-key: {KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    )
    return head.encode() + body


class Wire:
    """One keep-alive connection reading whole responses (status, headers, body)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "connection closed"
        self.buf += chunk

    def head(self) -> tuple[int, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        raw, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = raw.decode().split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        return int(lines[0].split()[1]), headers

    def response(self, has_body: bool = True) -> tuple[int, dict[str, str], bytes]:
        status, headers = self.head()
        length = int(headers.get("content-length", "0")) if has_body else 0
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, body


# the response writer -------------------------------------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"extra:{name}"


class Cycle:
    response_started = False


def test_head_goes_out_with_the_body_in_one_write() -> None:
    rec, cycle = Recorder(), Cycle()
    t = HeadWithBody(rec, cycle)  # type: ignore[arg-type]
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # before the response: not held
    assert rec.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.response_started = True
    t.write(b"HEAD")
    assert len(rec.writes) == 1
    t.write(b"BODY")
    t.write(b"MORE")
    assert rec.writes[1:] == [b"HEADBODY", b"MORE"]
    assert t.get_extra_info("peername") == "extra:peername"


def test_a_held_head_is_flushed_on_close() -> None:
    rec, cycle = Recorder(), Cycle()
    t = HeadWithBody(rec, cycle)  # type: ignore[arg-type]
    cycle.response_started = True
    t.write(b"HEAD")
    t.close()
    assert rec.writes == [b"HEAD"] and rec.closed


def test_pipelined_searches_each_get_their_whole_answer(server: Server) -> None:
    wire = Wire(server.port)
    bodies = [search_body(seed) for seed in range(4)]
    wire.sock.sendall(b"".join(request("POST", "/collections/c/search", b) for b in bodies))
    answers = [wire.response() for _ in bodies]
    http = httpx.Client(base_url=server.url, headers={"api-key": KEY})
    for body, (status, headers, raw) in zip(bodies, answers, strict=True):
        assert status == 200 and headers["content-type"] == "application/json"
        expected = http.post("/collections/c/search", content=body).json()
        assert orjson.loads(raw) == expected and len(expected["hits"]) == 3


def test_http_1_0_search_is_answered_then_closed(server: Server) -> None:
    wire = Wire(server.port)
    raw = request("POST", "/collections/c/search", search_body(4)).replace(b"HTTP/1.1", b"HTTP/1.0")
    wire.sock.sendall(raw)
    status, headers, body = wire.response()
    assert status == 200 and len(orjson.loads(body)["hits"]) == 3
    assert headers.get("connection") == "close" and wire.sock.recv(1) == b""


def test_head_request_is_answered_without_a_body(server: Server) -> None:
    wire = Wire(server.port)
    wire.sock.sendall(request("HEAD", "/healthz"))
    status, _, _ = wire.response(has_body=False)
    assert status in (200, 405)  # whatever the route says, the head arrives (it is not held)
    wire.sock.sendall(request("POST", "/collections/c/search", search_body(1)))
    status, _, raw = wire.response()
    assert status == 200 and len(orjson.loads(raw)["hits"]) == 3


def test_expect_100_continue_gets_its_interim_answer(server: Server) -> None:
    wire = Wire(server.port)
    body = search_body(2)
    head = request("POST", "/collections/c/search", body, "Expect: 100-continue\r\n")
    wire.sock.sendall(head[: -len(body)])
    status, _ = wire.head()
    assert status == 100
    wire.sock.sendall(body)
    status, _, raw = wire.response()
    assert status == 200 and len(orjson.loads(raw)["hits"]) == 3


# the fast path's duties ------------------------------------------------------------------------
def test_fast_path_counts_auths_limits_and_errors(server: Server) -> None:
    http = httpx.Client(base_url=server.url, headers={"api-key": READ_KEY})
    before = http.get("/metrics").text
    ok = [http.post("/collections/c/search", content=search_body(s)) for s in range(5)]
    assert all(r.status_code == 200 for r in ok)
    anonymous = httpx.post(f"{server.url}/collections/c/search", content=search_body(0))
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    assert anonymous.json()["error"]["code"] == "unauthorized"
    missing = http.post("/collections/nope/search", content=search_body(0))
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = http.post("/collections/c/search", content=b'{"vector": [1, 2], "k": 3}')
    assert bad.status_code == 400 and "dimension" in bad.json()["error"]["message"]
    unknown = http.post("/collections/c/search", content=b'{"vector": [1], "kk": 3}')
    assert unknown.status_code == 400 and "kk" in unknown.json()["error"]["message"]
    big = http.post("/collections/c/search", content=b" " * 5000)  # declared over the limit
    assert big.status_code == 413 and big.json()["error"]["code"] == "payload_too_large"
    after = http.get("/metrics").text
    for status, n in ((200, 5), (401, 1), (404, 1), (400, 2), (413, 1)):
        assert searches_counted(after, status) - searches_counted(before, status) == n, status


def test_fast_path_refuses_a_streamed_body_past_the_limit(server: Server) -> None:
    wire = Wire(server.port)
    chunk = b" " * 2500  # two chunks: 5,000 bytes, over the 4,096 limit, no Content-Length
    wire.sock.sendall(
        b"POST /collections/c/search HTTP/1.1\r\nHost: t\r\napi-key: "
        + KEY.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(2))
        + b"0\r\n\r\n"
    )
    status, headers, raw = wire.response()
    assert status == 413 and orjson.loads(raw)["error"]["code"] == "payload_too_large"
    assert headers["connection"] == "close"


def test_with_cors_on_search_answers_carry_cors_headers(tmp_path: Path) -> None:
    from server_helpers import app_clients

    with app_clients(tmp_path / "data") as make:
        client: TestClient = make(cors_origins=["https://a.example"])
        assert client.put("/collections/c", json={"dim": DIM}).status_code == 201
        x = unit_rows(3, DIM, seed=1)
        points = [{"id": i, "vector": v} for i, v in enumerate(x.tolist())]
        assert client.put("/collections/c/points", json={"points": points}).status_code == 200
        origin = {"Origin": "https://a.example"}
        r = client.post("/collections/c/search", content=search_body(3), headers=origin)
        assert r.status_code == 200 and len(r.json()["hits"]) == 3
        assert r.headers["access-control-allow-origin"] == "https://a.example"
