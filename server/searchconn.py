"""A client connection a search process owns (server/searchworker.py): the server's event loop
handed it over when it was accepted (server/searchpool.py), so the process reads the plain
searches from it and writes their answers itself, with no hop through the server process.

Only the plain case is read here: `POST /collections/{name}/search` over HTTP/1.1, with a
Content-Length within the body limit, no Expect, Transfer-Encoding or Upgrade header, no
Connection header but `keep-alive`, every header line well formed and named once, a key the
server's settings accept, a collection this process can follow. At the first request that is
anything else, the connection goes back to the server with every byte not yet answered
(`Conn.back`), and the server's own HTTP stack reads it from there as if it had been its own
all along: its answer (401, 404, 413, a write, ...) is the server's, byte for byte. Requests
are answered in order; a pipelined one waits for the answers before it.

Answers carry the headers the server's answers carry (date, server, content-type,
content-length) and the one JSON error shape for a search's own errors (400s)."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field
from email.utils import formatdate

from core.errors import PithError
from server.auth import access_level, presented_key
from server.protocol import FAST_URL, answer_bytes
from server.service.registry import check_name
from server.settings import Settings

HEAD_END = b"\r\n\r\n"
MAX_HEAD = 1 << 16  # a head still open past this goes back (the server answers it)
READ = 1 << 16
REFUSED_HEADERS = (b"expect", b"transfer-encoding", b"upgrade")
UVICORN_HEADERS: tuple[tuple[bytes, bytes], ...] = ((b"server", b"uvicorn"),)  # its default


@dataclass
class Request:
    """One plain search read from a connection: its collection and body, its raw bytes
    (sent back to the server if this process cannot answer it after all) and when its head
    was read (for the server's latency histogram)."""

    name: str
    body: bytes
    raw: bytes
    started: float


@dataclass
class Conn:
    """A handed-over connection: bytes read but not yet answered, answers not yet written."""

    sock: socket.socket
    settings: Settings
    #: the headers the server's answers carry besides the date (sent with the connection)
    headers: list[tuple[bytes, bytes]] = field(default_factory=lambda: list(UVICORN_HEADERS))
    buf: bytearray = field(default_factory=bytearray)
    out: bytearray = field(default_factory=bytearray)
    pending: int = 0  # requests read and not yet answered
    back: bool = False  # a request this process does not answer is next in `buf`
    closed: bool = False
    last_active: float = field(default_factory=time.monotonic)

    def read(self) -> list[Request]:
        """Read what arrived; the complete plain requests in it, in order."""
        try:
            data = self.sock.recv(READ)
        except (BlockingIOError, InterruptedError):
            return []
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return []
        self.last_active = time.monotonic()
        self.buf += data
        return self.requests()

    def requests(self) -> list[Request]:
        """Complete plain requests at the front of `buf` (taken out of it); stops at one that
        is not plain (`back` set) or not complete."""
        out: list[Request] = []
        while not self.back:
            end = self.buf.find(HEAD_END)
            if end < 0:
                self.back = len(self.buf) > MAX_HEAD
                break
            head = plain_head(bytes(self.buf[:end]), self.settings)
            if head is None:
                self.back = True
                break
            name, length = head
            total = end + len(HEAD_END) + length
            if len(self.buf) < total:
                break
            raw = bytes(self.buf[:total])
            del self.buf[:total]
            out.append(Request(name, raw[total - length :], raw, time.perf_counter()))
        self.pending += len(out)
        return out

    def answer(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.pending -= 1
        self.out += response_bytes(status, self.headers, headers, body)

    def flush(self) -> bool:
        """Write what the socket takes now; True once everything is written."""
        while self.out and not self.closed:
            try:
                sent = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                self.closed = True
                return True
            del self.out[:sent]
        return True

    def returnable(self) -> bool:
        """Ready to go back to the server: nothing of ours left to answer or write."""
        return self.back and not self.pending and not self.out and not self.closed


def plain_head(head: bytes, settings: Settings) -> tuple[str, int] | None:
    """(collection, body length) of a plain search's head, or None."""
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1":
        return None
    match = FAST_URL.match(parts[1])
    if match is None:
        return None
    headers: dict[str, str] = {}
    length = None
    for line in lines[1:]:
        key, sep, value = line.partition(b":")
        name = key.lower()
        if not sep or not key or key != key.strip() or name.decode("latin-1") in headers:
            return None
        if name in REFUSED_HEADERS:
            return None
        text = value.strip()
        if name == b"connection" and text.lower() != b"keep-alive":
            return None  # close (or upgrade): the server's stack ends the connection
        if name == b"content-length":
            if not text.isdigit():
                return None
            length = int(text)
        headers[name.decode("latin-1")] = text.decode("latin-1")
    if length is None or length > settings.max_body_bytes:
        return None
    collection = match.group(1).decode("ascii")
    try:
        check_name(collection)
        access_level(settings, presented_key(headers))
    except PithError:
        return None  # the server answers it (400, 401)
    return collection, length


_date: tuple[int, bytes] = (0, b"")


def date_header() -> bytes:
    """The Date header's value, made once a second (as uvicorn does)."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, formatdate(now, usegmt=True).encode())
    return _date[1]


def response_bytes(
    status: int,
    defaults: list[tuple[bytes, bytes]],
    headers: list[tuple[bytes, bytes]],
    body: bytes,
) -> bytes:
    """Status line, the date, the server's default headers and the answer's own, as the
    server writes them, then the body."""
    return answer_bytes(status, [(b"date", date_header()), *defaults], headers, body)
