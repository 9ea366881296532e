"""Load-test plumbing: a server subprocess (start, readiness, RSS, stop) and a minimal
keep-alive HTTP/1.1 client on an asyncio Protocol, run on uvloop (`run_client`), so the load
generator's own CPU (on the same machine as the server) stays small next to the server's
work."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import orjson

ROOT = Path(__file__).resolve().parents[1]
T = TypeVar("T")


def run_client(coro: Coroutine[Any, Any, T]) -> T:
    """Run a load generator coroutine on uvloop, the loop the server runs on (asyncio's own
    loop where uvloop is missing). Measured with 16 connections on the machine the server
    shares: about 35 instead of 45 us of client CPU per request."""
    try:
        import uvloop
    except ImportError:  # not on Windows
        return asyncio.run(coro)
    return uvloop.run(coro)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class ServerProcess:
    """`python -m server serve` on a free port."""

    data: Path
    env: dict[str, str]
    port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    load_s: float = 0.0  # the server's own account of opening its collections

    def start(self, timeout_s: float = 600.0) -> float:
        """Start and wait for /readyz; returns seconds from spawn to ready."""
        self.port = self.port or free_port()
        cmd = [
            sys.executable,
            "-m",
            "server",
            "serve",
            "--data",
            str(self.data),
            "--port",
            str(self.port),
        ]
        env = {**os.environ, "PITH_LOG_LEVEL": "warning", **self.env}
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        deadline = t0 + timeout_s
        while time.perf_counter() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("server exited during start-up")
            try:
                ready = httpx.get(f"{self.url}/readyz", timeout=2)
                if ready.status_code == 200:
                    self.load_s = ready.json().get("load_s") or 0.0
                    return time.perf_counter() - t0
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError("server not ready in time")

    def pids(self) -> list[int]:
        """The server and its child processes (its search processes)."""
        assert self.proc is not None
        pid = self.proc.pid
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            kids = []
        return [pid, *map(int, kids)]

    def cpu_seconds(self) -> float:
        """User + system CPU time the server and its search processes have used."""
        total = 0.0
        for pid in self.pids():
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # ended meanwhile
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    def rss_bytes(self, children: bool = False) -> int:
        """Resident memory of the server (with `children`: and of its search processes)."""
        pids = self.pids() if children else self.pids()[:1]
        total = 0
        for pid in pids:
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        return total

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 300.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout_s)


class Connection:
    """One keep-alive HTTP/1.1 connection speaking just enough HTTP for JSON requests (answers
    with a Content-Length, one at a time). An asyncio Protocol: a request is one write, and an
    answer usually one read parsed in place (measured: stream readline() per header line cost
    the load generator about twice the CPU per request, CPU it takes from the server it
    measures on a shared machine)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._proto: _Answers | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        _, self._proto = await loop.create_connection(_Answers, self.host, self.port)

    async def request(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        assert self._proto is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        return await self._proto.ask(head + body)

    async def close(self) -> None:
        if self._proto is not None and self._proto.transport is not None:
            self._proto.transport.close()


class _Answers(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buf = bytearray()
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, bytes]]:
        assert self.transport is not None and self._waiter is None
        self._waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0 or self._waiter is None:
            return
        head = bytes(self._buf[:end]).lower()
        length = _content_length(head)
        if len(self._buf) < end + 4 + length:
            return
        status = int(head[9:12])
        body = bytes(self._buf[end + 4 : end + 4 + length])
        del self._buf[: end + 4 + length]
        waiter, self._waiter = self._waiter, None
        waiter.set_result((status, body))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc or ConnectionError("connection closed"))


def _content_length(head: bytes) -> int:
    """The Content-Length of a lower-cased response head (0 when there is none)."""
    at = head.find(b"\r\ncontent-length:")
    if at < 0:
        return 0
    line_end = head.find(b"\r\n", at + 2)
    return int(head[at + len(b"\r\ncontent-length:") : line_end if line_end > 0 else None])


async def closed_loop(
    port: int, path: str, bodies: list[bytes], concurrency: int, duration_s: float
) -> tuple[int, list[float]]:
    """`concurrency` connections each sending the next body as soon as the last answered,
    for `duration_s`; returns (requests completed, latencies in seconds)."""
    latencies: list[float] = []
    counter = iter(range(10**12))
    stop_at = time.perf_counter() + duration_s

    async def worker() -> None:
        conn = Connection("127.0.0.1", port)
        await conn.open()
        try:
            while time.perf_counter() < stop_at:
                body = bodies[next(counter) % len(bodies)]
                t0 = time.perf_counter()
                status, payload = await conn.request("POST", path, body)
                latencies.append(time.perf_counter() - t0)
                if status != 200:
                    raise RuntimeError(f"HTTP {status}: {payload[:200]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return len(latencies), latencies


def json_body(doc: object) -> bytes:
    return orjson.dumps(doc, option=orjson.OPT_SERIALIZE_NUMPY)
