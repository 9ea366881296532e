"""Search processes: the server's raw search bodies answered in other processes, each with
its own interpreter (and GIL), from read-only followers of the collections.

Why: in one process the event loop and the search thread take turns on the GIL, and the
requests move in lock-step (the loop writes 15 answers and reads 15 requests while the search
thread waits, then the other way round). Measured on 2 cores, interleaved runs on one 117k
flagship index at 16 connections: two search processes answered 9 to 15 % more than the
server process alone; three, or one with a two-thread OpenMP team, did worse.

Client connections (`search_connections`, on by default): the server's HTTP protocol hands
each new connection to a ready process (round robin, `hand_off`) before reading from it; the
process answers the connection's plain searches itself (server/searchconn.py) and hands it
back, with the bytes it has not answered, at the first request that is anything else
(`take_back`: the server's HTTP stack then reads those bytes first). Measured on 2 cores, 16
connections, one 117k flagship index: about 40 % more searches per second than sending every
body through the server process, whose event loop then only sees the other requests.

`SearchProcesses.post` takes what the search dispatcher takes: a raw body for a local
collection goes to the least busy process that has said it is ready; the process reads it
inside one SQLite read transaction after replaying every committed write
(server/service/follower.py), so a search sees every write acknowledged before it came.
Parsed requests (the batch route), and everything while no process is ready (start-up, a
process that died), go to the in-process dispatcher; so do the searches a process had not
answered when it died (the connections it owned close with it). The processes start once the
server's collections are open, open them too before they say they are ready, exit when the
server closes its ends (or dies: their reads see the end), and one that dies is started again
(at most every RESPAWN_S). The searches queued in one turn of the event loop go to a process
in one write, and it answers them as one batch."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import os
import pickle
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from core.errors import PithError
from server.dispatch import Receiver
from server.fastpath import SEARCH_ROUTE
from server.frames import BACK_MAX, HELLO, METRICS, OPEN, FrameReader, frame
from server.metrics import Metrics
from server.service.collection import Collection
from server.settings import Settings

log = logging.getLogger("pith.searchpool")
RESPAWN_S = 5.0
STOP_S = 10.0
Item = tuple[Any, Any]  # (collection, raw body or parsed request), as the dispatcher's
# makes the server's protocol for a connection handed back with the bytes read from it
ProtocolFactory = Callable[[bytes], asyncio.BaseProtocol]


class Dispatcher(Protocol):
    def post(self, item: Item, receiver: Receiver[Any]) -> None: ...

    def close(self) -> None: ...


def forwarded(code: str, message: str) -> PithError:
    """The error a search process answered, as the class it raised (found by its code)."""
    return _classes().get(code, PithError)(message)


@functools.cache
def _classes() -> dict[str, type[PithError]]:
    found: dict[str, type[PithError]] = {}
    todo = [PithError]
    while todo:
        cls = todo.pop()
        found.setdefault(cls.code, cls)
        todo += cls.__subclasses__()
    return found


class Link(asyncio.Protocol):
    """The server's end of one search process's socketpair."""

    def __init__(
        self,
        pool: SearchProcesses,
        proc: subprocess.Popen[bytes],
        sock: socket.socket,
        handoff: socket.socket,
    ) -> None:
        self.pool, self.proc, self.sock, self.handoff = pool, proc, sock, handoff
        self.pending: dict[int, tuple[Item, Receiver[Any]]] = {}
        self.ready = False
        self.closed = False
        self.transport: asyncio.Transport | None = None
        self._reader = FrameReader()
        self._outgoing: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self._flush()  # the OPEN message queued at spawn

    def send(self, req_id: int, item: Item, receiver: Receiver[Any]) -> None:
        """Queue a search; the searches queued in one turn of the loop go out in one write
        (at its end), so the process takes them as one batch."""
        self.pending[req_id] = (item, receiver)
        if not self._outgoing:
            asyncio.get_running_loop().call_soon(self._flush)
        self._outgoing.append(frame((req_id, item[0].name, item[1])))

    def hand_off(self, fd: int, headers: bytes) -> bool:
        """Give the process a client connection (False when it cannot take it now)."""
        if self.closed or not self.ready:
            return False
        try:
            socket.send_fds(self.handoff, [headers], [fd])
        except OSError:  # full (a process far behind) or gone: the server keeps it
            return False
        return True

    def handed_back(self) -> None:
        """Connections the process gives back, each with the bytes it did not answer."""
        while True:
            try:
                data, fds, _, _ = socket.recv_fds(self.handoff, BACK_MAX, 1)
            except OSError:  # nothing more now (or the process is gone)
                return
            if not fds:
                return
            self.pool.take_back(socket.socket(fileno=fds[0]), data)

    def queue(self, data: bytes) -> None:
        """A message to send first (before the connection is made)."""
        self._outgoing.append(data)

    def _flush(self) -> None:
        data, self._outgoing = b"".join(self._outgoing), []
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        for message in self._reader.feed(data):
            if message == HELLO:
                self.ready = True
                continue
            if message[0] == METRICS:  # type: ignore[index]
                self.pool.answered(message[1])  # type: ignore[index]
                continue
            for req_id, ok, value in message:  # type: ignore[attr-defined]
                _, receiver = self.pending.pop(req_id)
                if receiver.cancelled():
                    continue
                if ok:
                    receiver.set_result(value)
                else:
                    receiver.set_exception(forwarded(*value))

    def connection_lost(self, exc: Exception | None) -> None:
        """The process is gone: its unanswered searches are answered in-process (the
        connections it owned are closed with it)."""
        self.ready, self.closed = False, True
        with contextlib.suppress(Exception):
            asyncio.get_running_loop().remove_reader(self.handoff.fileno())
        self.handoff.close()
        if not self.pool.closing:
            log.warning("search process %d ended (%s)", self.proc.pid, self.proc.poll())
        pending, self.pending = self.pending, {}
        for item, receiver in pending.values():
            if not receiver.cancelled():
                self.pool.local.post(item, receiver)


class SearchProcesses:
    """See the module docstring. `root` is the service's collections folder."""

    def __init__(
        self,
        root: Path,
        processes: int,
        local: Dispatcher,
        collections: Callable[[], list[Any]],
        settings: Settings,
        metrics: Metrics,
    ) -> None:
        self.root, self.processes, self.local = root, processes, local
        self.collections, self.settings, self.metrics = collections, settings, metrics
        self._to_process = metrics.routed.labels("search_process")
        self._to_server = metrics.routed.labels("server")
        self._on_connection = metrics.routed.labels("search_process_connection")
        self.links: list[Link] = []
        self.closing = False
        self._ids = itertools.count()
        self._turn = itertools.count()
        self._started_at = -RESPAWN_S
        self.protocol_factory: ProtocolFactory | None = None  # see take_connections
        self._headers = b""

    def start(self) -> None:
        """Start the processes (on the event loop, once the collections are open): each
        opens them before it says it is ready."""
        self._start_missing()

    def post(self, item: Item, receiver: Receiver[Any]) -> None:
        collection, body = item
        link = self._pick() if isinstance(body, bytes) and type(collection) is Collection else None
        if link is None:
            self._to_server.inc()
            self.local.post(item, receiver)
            return
        self._to_process.inc()
        link.send(next(self._ids), item, receiver)

    def take_connections(
        self, factory: ProtocolFactory, default_headers: list[tuple[bytes, bytes]]
    ) -> None:
        """Called once by the server's protocol: how to make its protocol for a connection
        handed back, and what its answers carry besides the date (sent with each hand-off)."""
        self.protocol_factory = factory
        self._headers = pickle.dumps(default_headers)

    def hand_off(self, fd: int) -> bool:
        """Hand a new client connection to a ready process, in turn (False: none took it)."""
        if not self.settings.search_connections or self.protocol_factory is None:
            return False
        ready = [link for link in self.links if link.ready and not link.closed]
        if not ready:
            return False
        link = ready[next(self._turn) % len(ready)]
        return link.hand_off(fd, self._headers)

    def take_back(self, sock: socket.socket, data: bytes) -> None:
        """A connection a process handed back: the server's protocol reads `data` first."""
        factory = self.protocol_factory
        if factory is None or self.closing:
            sock.close()
            return
        loop = asyncio.get_running_loop()
        task = loop.create_task(loop.connect_accepted_socket(lambda: factory(data), sock))
        task.add_done_callback(_report)

    def answered(self, done: list[tuple[int, float]]) -> None:
        """Request metrics of the searches a process answered on its own connections."""
        self._on_connection.inc(len(done))
        for status, seconds in done:
            self.metrics.request_done("POST", SEARCH_ROUTE, status, seconds)

    async def submit(self, item: Item) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.post(item, future)
        return await future

    def _pick(self) -> Link | None:
        """The ready process with the fewest searches in flight (starting the missing ones)."""
        if len(self.links) < self.processes or any(link.closed for link in self.links):
            self._start_missing()
        best = None
        for link in self.links:
            if link.ready and (best is None or len(link.pending) < len(best.pending)):
                best = link
        return best

    def _start_missing(self) -> None:
        now = time.monotonic()
        if self.closing or now - self._started_at < RESPAWN_S:
            return
        self._started_at = now
        self.links = [link for link in self.links if not link.closed]
        while len(self.links) < self.processes:
            self.links.append(self._spawn())

    def _spawn(self) -> Link:
        ours, theirs = socket.socketpair()
        ours_fd, theirs_fd = _message_pair()
        cmd = [sys.executable, "-m", "server.searchworker", "--fd", str(theirs.fileno())]
        cmd += ["--handoff-fd", str(theirs_fd.fileno())]
        cmd += ["--root", str(self.root), "--log-level", self.settings.log_level]
        cmd += ["--omp-threads", str(max(1, (os.cpu_count() or 1) // self.processes))]
        passed = [theirs.fileno(), theirs_fd.fileno()]
        proc = subprocess.Popen(cmd, pass_fds=passed, cwd=Path(__file__).parents[1])
        theirs.close()
        theirs_fd.close()
        ours_fd.setblocking(False)
        link = Link(self, proc, ours, ours_fd)
        local = [c.name for c in self.collections() if type(c) is Collection]
        link.queue(frame((OPEN, local, self.settings)))
        loop = asyncio.get_running_loop()
        loop.add_reader(ours_fd.fileno(), link.handed_back)
        task = loop.create_task(loop.create_connection(lambda: link, sock=ours))
        task.add_done_callback(_report)
        return link

    def close(self) -> None:
        """Close every link (each process then exits) and wait for the processes."""
        self.closing = True
        for link in self.links:  # the process reads the end at once (a transport's close()
            with contextlib.suppress(OSError):  # would wait for the loop's next turn)
                link.sock.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + STOP_S
        for link in self.links:
            try:
                link.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                link.proc.kill()
                link.proc.wait()
        self.local.close()


def _message_pair() -> tuple[socket.socket, socket.socket]:
    """A socketpair that keeps message boundaries, for passing connections with their bytes:
    SOCK_SEQPACKET, or SOCK_DGRAM where there is none (macOS)."""
    try:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)


def _report(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("search process link failed: %s", task.exception())
