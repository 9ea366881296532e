"""A search process: answers the raw search bodies its server sends over a socketpair, from
read-only followers of the server's collections (server/service/follower.py), with the same
code the server's own search threads run (routes.search.answer_jobs). Single-threaded: it
takes every request waiting on the socket as one batch. It exits when the server closes its
end (or dies). Started by server/searchpool.py as `python -m server.searchworker`."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from server.frames import HELLO, OPEN, FrameReader, frame

log = logging.getLogger("pith.searchworker")
READ = 1 << 20
# (request id, collection, incarnation, swaps, body)
Request = tuple[int, str, int, int, bytes]
# (request id, True, answer) or (request id, False, (error code, message))
Reply = tuple[int, bool, object]


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--fd", type=int, required=True, help="this end of the socketpair")
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
    import server.service.follower  # noqa: F401

    with socket.socket(fileno=args.fd) as sock, contextlib.suppress(ConnectionError):
        Worker(args.root).serve(sock)  # a server gone mid-write: nothing left to answer
    return 0


class Worker:
    """Followers by collection name, and the request loop."""

    def __init__(self, root: Path) -> None:
        from server.service.embedders import Embedders
        from server.service.follower import Follower

        self.root = root
        self.followers: dict[str, Follower] = {}
        self.embedders = Embedders()  # one per process, as one per server: models load once

    def serve(self, sock: socket.socket) -> None:
        reader = FrameReader()
        try:
            while True:
                messages = _receive(sock, reader)
                if messages is None:
                    return
                requests = [m for m in messages if m[0] != OPEN]
                for message in messages:
                    if message[0] == OPEN:
                        self.open(message[1])
                        sock.sendall(frame(HELLO))
                if requests:
                    sock.sendall(frame(self.replies(requests)))
        finally:
            for follower in self.followers.values():
                follower.close()

    def open(self, positions: list[tuple[str, int, int]]) -> None:
        """Follow the server's collections before the first search needs them."""
        from server.service.follower import Follower, Position

        for name, incarnation, swaps in positions:
            try:
                at = Position(incarnation, swaps)
                self.followers[name] = Follower(self.root / name, at, self.embedders)
            except Exception as exc:  # the first search will try again (and answer the error)
                log.warning("following collection %s failed: %s", name, exc)

    def replies(self, requests: list[Request]) -> list[Reply]:
        """One reply per request, whatever happens."""
        try:
            return self.answer(requests)
        except Exception as exc:
            log.exception("search batch failed")
            return [_failure(request[0], exc) for request in requests]

    def answer(self, requests: list[Request]) -> list[Reply]:
        from server.routes.search import answer_jobs

        replies: list[Reply] = []
        jobs, ids = [], []
        with contextlib.ExitStack() as reads:
            collections = self._reading(requests, reads)
            for req_id, name, *_, body in requests:
                found = collections[name]
                if isinstance(found, BaseException):
                    replies.append(_failure(req_id, found))
                else:
                    jobs.append((found, body))
                    ids.append(req_id)
            answers = answer_jobs(jobs)  # type: ignore[arg-type]
        for req_id, answer in zip(ids, answers, strict=True):
            if isinstance(answer, bytes):
                replies.append((req_id, True, answer))
            else:
                replies.append(_failure(req_id, answer))  # type: ignore[arg-type]
        return replies

    def _reading(self, requests: list[Request], reads: contextlib.ExitStack) -> dict[str, object]:
        """Each collection of the batch, caught up and pinned for reading (the latest
        position a request names wins), or the error that prevented it."""
        from server.service.follower import Follower, Position

        latest: dict[str, Position] = {}
        for _, name, incarnation, swaps, _ in requests:
            latest[name] = max(latest.get(name, Position(-1, -1)), Position(incarnation, swaps))
        out: dict[str, object] = {}
        for name, at in latest.items():
            try:
                follower = self.followers.get(name)
                if follower is None:
                    follower = Follower(self.root / name, at, self.embedders)
                    self.followers[name] = follower
                out[name] = reads.enter_context(follower.reading(at))
            except Exception as exc:
                log.warning("following collection %s failed: %s", name, exc)
                dropped = self.followers.pop(name, None)
                if dropped is not None:
                    dropped.close()
                out[name] = exc
        return out


def _failure(req_id: int, error: BaseException) -> Reply:
    from core.errors import PithError

    if isinstance(error, PithError):
        return (req_id, False, (error.code, error.message))
    log.error("search failed", exc_info=error)
    return (req_id, False, ("internal", "internal error"))


def _receive(sock: socket.socket, reader: FrameReader) -> list[Any] | None:
    """Blocks for at least one message, then takes every other one already sent; None once
    the server closed its end. (The socket stays blocking; the drain reads with MSG_DONTWAIT
    rather than switching the socket's mode twice a batch.)"""
    requests: list[Any] = []
    while not requests:
        data = sock.recv(READ)
        if not data:
            return None
        requests += reader.feed(data)
    while True:
        try:
            data = sock.recv(READ, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return requests
        if not data:
            return requests  # answered; the next read sees the end
        requests += reader.feed(data)


if __name__ == "__main__":
    raise SystemExit(main())
