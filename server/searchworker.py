"""A search process: answers searches from read-only followers of the server's collections
(server/service/follower.py), with the same code the server's own search threads run
(routes.search.answer_jobs). Two sources: the raw bodies the server sends over a socketpair
(frames), and the client connections the server hands over (server/searchconn.py), whose plain
searches it reads and answers itself. Single-threaded, on a selector: what arrived from both is
answered as one batch. It exits when the server closes its end (or dies). Started by
server/searchpool.py as `python -m server.searchworker`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import pickle
import selectors
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from server.frames import BACK_MAX, HELLO, METRICS, OPEN, FrameReader, frame

log = logging.getLogger("pith.searchworker")
READ = 1 << 20
KEEP_ALIVE_S = 5.0  # an idle handed-over connection is closed after this (as uvicorn's)
METRICS_S = 0.2  # the request metrics of its own answers go to the server this often
# (request id, collection, body)
Call = tuple[int, str, bytes]
# (request id, True, answer) or (request id, False, (error code, message))
Reply = tuple[int, bool, object]
IN, OUT = selectors.EVENT_READ, selectors.EVENT_WRITE


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fd", type=int, required=True, help="this end of the frames socketpair")
    p.add_argument("--handoff-fd", type=int, required=True, help="this end of the fd socketpair")
    p.add_argument("--root", type=Path, required=True, help="the server's collections folder")
    p.add_argument("--omp-threads", type=int, default=1, help="OpenMP team of the searches")
    p.add_argument("--log-level", default="warning")
    args = p.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s"
    )
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    import faiss

    faiss.omp_set_num_threads(args.omp_threads)
    import server.routes.search  # loaded before the process says it is ready
    import server.searchconn
    import server.service.follower  # noqa: F401

    with (
        socket.socket(fileno=args.fd) as link,
        socket.socket(fileno=args.handoff_fd) as handoff,
        contextlib.suppress(ConnectionError),  # a server gone mid-write: nothing to answer
    ):
        Worker(args.root).serve(link, handoff)
    return 0


class Worker:
    """Followers by collection name, handed-over connections by fd, and the loop."""

    def __init__(self, root: Path) -> None:
        from server.searchconn import Conn
        from server.service.embedders import Embedders
        from server.service.follower import Follower

        self.root = root
        self.followers: dict[str, Follower] = {}
        self.embedders = Embedders()  # one per process, as one per server: models load once
        self.conns: dict[int, Conn] = {}
        self.settings: Any = None
        self.selector = selectors.DefaultSelector()  # epoll on Linux
        self.done: list[tuple[int, float]] = []  # (status, seconds) not yet sent to the server
        self.reported = 0.0

    def serve(self, link: socket.socket, handoff: socket.socket) -> None:
        handoff.setblocking(False)
        self.selector.register(link.fileno(), IN)
        self.selector.register(handoff.fileno(), IN)
        reader, swept, stopping = FrameReader(), time.monotonic(), False
        try:
            while not stopping:
                calls: list[Call] = []
                direct: list[Any] = []
                touched: dict[int, Any] = {}  # connections with events: settled below
                for key, events in self.selector.select(METRICS_S if self.done else 1.0):
                    fd = key.fd
                    if fd == link.fileno():
                        messages = _receive(link, reader)
                        stopping = messages is None  # what was read meanwhile is answered
                        calls += self._messages(link, messages or [])
                    elif fd == handoff.fileno():
                        self._take(handoff)
                    elif fd in self.conns:
                        touched[fd] = self.conns[fd]
                        direct += self._read(touched[fd], events)
                replies = self._answer(calls, direct) if calls or direct else []
                self._settle(handoff, touched.values())
                self._report(link, replies)
                if time.monotonic() - swept > 1.0:
                    swept = self._sweep()
        finally:
            for conn in list(self.conns.values()):
                self._drop(conn)
            for follower in self.followers.values():
                follower.close()

    # the server's frames -------------------------------------------------------------------
    def _messages(self, link: socket.socket, messages: list[Any]) -> list[Call]:
        calls = []
        for message in messages:
            if message[0] == OPEN:
                self.settings = message[2]
                self.open(message[1])
                link.sendall(frame(HELLO))
            else:
                calls.append(message)
        return calls

    def open(self, names: list[str]) -> None:
        """Follow the server's collections before the first search needs them."""
        for name in names:
            with contextlib.suppress(Exception):  # the first search tries again
                self._follower(name)

    def _follower(self, name: str) -> Any:
        from server.service.follower import Follower

        follower = self.followers.get(name)
        if follower is None:
            follower = self.followers[name] = Follower(self.root / name, self.embedders)
        return follower

    # handed-over connections ----------------------------------------------------------------
    def _take(self, handoff: socket.socket) -> None:
        """Connections the server handed over (with the headers its answers carry)."""
        import server.searchconn as sc

        while True:
            try:
                data, fds, _, _ = socket.recv_fds(handoff, 1 << 12, 8)
            except (BlockingIOError, InterruptedError):
                return
            if not fds:
                return  # the server closed its end: the frames socket says so too
            headers = pickle.loads(data)
            for fd in fds:
                sock = socket.socket(fileno=fd)
                sock.setblocking(False)
                self.conns[fd] = sc.Conn(sock, self.settings, headers)
                self.selector.register(fd, IN)

    def _read(self, conn: Any, events: int) -> list[Any]:
        if events & OUT:
            conn.flush()
        if events & IN and not conn.back:  # going back: the server reads the rest
            return [(conn, request) for request in conn.read()]
        return []

    def _settle(self, handoff: socket.socket, touched: Iterable[Any]) -> None:
        """For the connections that had events: write answers, close the closed ones, hand
        back the ones whose next request is the server's."""
        for conn in list(touched):
            done = conn.flush()
            if conn.closed:
                self._drop(conn)
            elif conn.returnable():
                self._give_back(handoff, conn)
            else:  # one going back waits for its answers to be written, reading nothing
                self._watch(conn, (0 if conn.back else IN) | (0 if done else OUT))

    def _give_back(self, handoff: socket.socket, conn: Any) -> None:
        data = bytes(conn.buf)
        if len(data) > BACK_MAX:
            log.warning("closing a connection: %d bytes to hand back", len(data))
        else:
            try:
                socket.send_fds(handoff, [data], [conn.sock.fileno()])
            except OSError as exc:
                log.warning("handing a connection back failed: %s", exc)
        self._drop(conn)  # our copy of the socket; the server's keeps the connection open

    def _watch(self, conn: Any, events: int) -> None:
        """Wait for `events` on the connection (for none: not watched until handed back)."""
        fd = conn.sock.fileno()
        key = self.selector.get_map().get(fd)
        if key is not None and events and key.events != events:
            self.selector.modify(fd, events)
        elif key is not None and not events:
            self.selector.unregister(fd)
        elif key is None and events:
            self.selector.register(fd, events)

    def _drop(self, conn: Any) -> None:
        fd = conn.sock.fileno()
        self.conns.pop(fd, None)
        with contextlib.suppress(KeyError, OSError, ValueError):  # not watched (or closed)
            self.selector.unregister(fd)
        conn.sock.close()

    def _sweep(self) -> float:
        now = time.monotonic()
        for conn in list(self.conns.values()):
            idle = not (conn.buf or conn.out or conn.pending)
            if idle and now - conn.last_active > KEEP_ALIVE_S:
                self._drop(conn)
        return now

    # answering -----------------------------------------------------------------------------
    def _report(self, link: socket.socket, replies: list[Reply]) -> None:
        """The replies to the server's calls, and now and then the request metrics (one
        write a batch: a message to the server wakes its event loop)."""
        out = frame(replies) if replies else b""
        now = time.monotonic()
        if self.done and now - self.reported > METRICS_S:
            out += frame((METRICS, self.done))
            self.done, self.reported = [], now
        if out:
            link.sendall(out)

    def _answer(self, calls: list[Call], direct: list[Any]) -> list[Reply]:
        """One batch: the server's calls and the connections' requests; the replies to the
        calls (the connections' answers wait in their buffers)."""
        from server.fastpath import JSON_HEADERS
        from server.protocol import error_answer
        from server.routes.search import answer_jobs

        replies: list[Reply] = []
        jobs: list[tuple[Any, bytes]] = []
        origins: list[Any] = []
        with contextlib.ExitStack() as reads:
            names = {c[1] for c in calls} | {r.name for _, r in direct}
            collections = {name: self._reading(name, reads) for name in names}
            for req_id, name, body in calls:
                found = collections[name]
                if isinstance(found, BaseException):
                    replies.append(_failure(req_id, found))
                else:
                    jobs.append((found, body))
                    origins.append(req_id)
            for conn, request in _answerable(direct, collections):
                jobs.append((collections[request.name], request.body))
                origins.append((conn, request))
            try:
                answers = answer_jobs(jobs)  # type: ignore[arg-type]
            except Exception as exc:  # one answer per request, whatever happens
                log.exception("search batch failed")
                answers = [exc] * len(jobs)
        for origin, answer in zip(origins, answers, strict=True):
            if isinstance(origin, int):
                if isinstance(answer, bytes):
                    replies.append((origin, True, answer))
                else:
                    replies.append(_failure(origin, answer))  # type: ignore[arg-type]
                continue
            conn, request = origin
            if isinstance(answer, bytes):
                status, headers, body = 200, JSON_HEADERS, answer
            else:
                status, headers, body = error_answer(answer)  # type: ignore[arg-type]
            conn.answer(status, headers, body)
            self.done.append((status, time.perf_counter() - request.started))
        return replies

    def _reading(self, name: str, reads: contextlib.ExitStack) -> Any:
        """The collection caught up and pinned for reading, or the error that prevented it."""
        try:
            return reads.enter_context(self._follower(name).reading())
        except Exception as exc:
            log.warning("following collection %s failed: %s", name, exc)
            dropped = self.followers.pop(name, None)
            if dropped is not None:
                dropped.close()
            return exc


def _answerable(direct: list[Any], collections: dict[str, Any]) -> list[Any]:
    """The connections' requests this batch answers: a request whose collection cannot be
    read here goes back (with every later one of its connection) to the front of the
    connection's bytes, for the server to answer."""
    out: list[Any] = []
    back: dict[int, tuple[Any, list[Any]]] = {}
    for conn, request in direct:
        if id(conn) in back or isinstance(collections[request.name], BaseException):
            back.setdefault(id(conn), (conn, []))[1].append(request)
        else:
            out.append((conn, request))
    for conn, requests in back.values():
        conn.buf[:0] = b"".join(r.raw for r in requests)
        conn.pending -= len(requests)
        conn.back = True
    return out


def _failure(req_id: int, error: BaseException) -> Reply:
    from core.errors import PithError

    if isinstance(error, PithError):
        return (req_id, False, (error.code, error.message))
    log.error("search failed", exc_info=error)
    return (req_id, False, ("internal", "internal error"))


def _receive(sock: socket.socket, reader: FrameReader) -> list[Any] | None:
    """Every whole message already sent (none, when only part of one came); None once the
    server closed its end. (The socket stays blocking for the replies' sendall; reads use
    MSG_DONTWAIT.)"""
    messages: list[Any] = []
    while True:
        try:
            data = sock.recv(READ, socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return messages
        if not data:
            return messages or None  # what came before the end is answered first
        messages += reader.feed(data)


if __name__ == "__main__":
    raise SystemExit(main())
