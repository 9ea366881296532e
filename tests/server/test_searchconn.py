"""What a search process reads from a connection it owns (server/searchconn.py): plain search
heads only, everything else left for the server, byte for byte; pipelined requests split at
their exact boundaries; a head that never ends goes back."""

from __future__ import annotations

import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from server.searchconn import MAX_HEAD, Conn, plain_head, response_bytes
from server.settings import Settings

OPEN = Settings(max_body_bytes=1024)  # type: ignore[call-arg]
KEYED = Settings(api_key="k", read_only_api_key="r")  # type: ignore[call-arg]


def head(*lines: str, start: str = "POST /collections/c/search HTTP/1.1") -> bytes:
    return "\r\n".join([start, *lines]).encode()


def test_a_plain_head_names_its_collection_and_length() -> None:
    assert plain_head(head("host: x", "Content-Length: 12"), OPEN) == ("c", 12)
    assert plain_head(head("content-length: 3", "connection: Keep-Alive"), OPEN) == ("c", 3)
    assert plain_head(head("content-length: 3", "api-key: r"), KEYED) == ("c", 3)
    assert plain_head(head("content-length: 3", "authorization: Bearer k"), KEYED) == ("c", 3)


@pytest.mark.parametrize(
    "lines,start",
    [
        (("content-length: 3",), "POST /collections/c/search HTTP/1.0"),
        (("content-length: 3",), "GET /collections/c/search HTTP/1.1"),
        (("content-length: 3",), "POST /collections/c/search?x=1 HTTP/1.1"),
        (("content-length: 3",), "POST /collections/c/points/scroll HTTP/1.1"),
        (("content-length: 3",), "POST /collections/../search HTTP/1.1"),
        (("content-length: 3",), "POST  /collections/c/search HTTP/1.1"),
        ((), "POST /collections/c/search HTTP/1.1"),  # no length
        (("content-length: 3", "content-length: 3"), None),  # named twice
        (("content-length: +3",), None),
        (("content-length: 1025",), None),  # over the body limit
        (("content-length: 3", "transfer-encoding: chunked"), None),
        (("content-length: 3", "expect: 100-continue"), None),
        (("content-length: 3", "connection: close"), None),
        (("content-length: 3", "upgrade: h2c"), None),
        (("content-length: 3", "bad header"), None),
        (("content-length: 3", " folded: x"), None),
        (("content-length: 3", "name : x"), None),
    ],
)
def test_anything_else_is_left_for_the_server(lines: tuple[str, ...], start: str | None) -> None:
    first = start or "POST /collections/c/search HTTP/1.1"
    assert plain_head(head(*lines, start=first), OPEN) is None


def test_a_missing_or_wrong_key_is_left_for_the_server() -> None:
    assert plain_head(head("content-length: 3"), KEYED) is None
    assert plain_head(head("content-length: 3", "api-key: nope"), KEYED) is None


def conn_with(data: bytes) -> Conn:
    a, b = socket.socketpair()
    b.close()
    conn = Conn(a, OPEN)
    conn.buf += data
    return conn


def test_pipelined_requests_split_exactly_and_stop_at_the_first_other_one() -> None:
    one = head("content-length: 2") + b"\r\n\r\n{}"
    two = head("content-length: 5", "api-key: z") + b"\r\n\r\n[1,2]"
    other = b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n"
    conn = conn_with(one + two + other + one)
    requests = conn.requests()
    assert [(r.name, r.body, r.raw) for r in requests] == [("c", b"{}", one), ("c", b"[1,2]", two)]
    assert conn.back and bytes(conn.buf) == other + one and conn.pending == 2
    assert not conn.returnable()  # its two answers first
    conn.answer(200, [], b"a")
    conn.answer(200, [], b"b")
    assert conn.pending == 0 and conn.out.startswith(b"HTTP/1.1 200 OK\r\ndate: ")


def test_a_body_still_coming_waits_and_a_head_that_never_ends_goes_back() -> None:
    partial = head("content-length: 10") + b"\r\n\r\n12345"
    conn = conn_with(partial)
    assert conn.requests() == [] and not conn.back and bytes(conn.buf) == partial
    conn.buf += b"67890"
    assert [r.body for r in conn.requests()] == [b"1234567890"]
    endless = conn_with(b"POST /collections/c/search HTTP/1.1\r\nx: " + b"y" * MAX_HEAD)
    assert endless.requests() == [] and endless.back and endless.returnable()


def test_answers_carry_the_servers_headers() -> None:
    server = [(b"server", b"uvicorn")]
    out = response_bytes(400, server, [(b"content-length", b"2"), (b"content-type", b"x")], b"{}")
    lines = out.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 400 Bad Request" and lines[1].startswith(b"date: ")
    assert lines[2:6] == [b"server: uvicorn", b"content-length: 2", b"content-type: x", b""]
    assert out.endswith(b"\r\n\r\n{}")


def test_connections_stay_with_the_server_when_the_setting_is_off() -> None:
    from server.metrics import Metrics
    from server.searchpool import SearchProcesses

    off = Settings(search_connections=False)  # type: ignore[call-arg]
    pool = SearchProcesses(Path("."), 2, None, list, off, Metrics())  # type: ignore[arg-type]
    pool.take_connections(lambda data: None, [])  # type: ignore[arg-type,return-value]
    link = SimpleNamespace(ready=True, closed=False, hand_off=lambda fd, headers: True)
    pool.links = [link]  # type: ignore[list-item]
    assert not pool.hand_off(0)
    pool.settings = OPEN
    assert pool.hand_off(0)  # the same pool with the setting on hands it over
