"""Micro-batching of concurrent searches: the event loop queues each request; every search
thread takes whatever is queued (up to MAX_BATCH) as one batch, answers it with one index
call per group of compatible queries, hands the answers back to the loop in one callback and
takes the next batch itself. Under light load a query is picked up at once; under load
batches grow, and a search thread never waits for the loop to give it work (measured: that
round trip left the search threads idle for half their time)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

import faiss

MAX_BATCH = 64
Item = TypeVar("Item")
Answer = TypeVar("Answer")
Answer_contra = TypeVar("Answer_contra", contravariant=True)
log = logging.getLogger("pith.dispatch")


class Receiver(Protocol[Answer_contra]):
    """Where an answer goes, on the event loop: an asyncio future, or a connection that writes
    it out at once (server/protocol.py), one loop iteration sooner than a future's callback."""

    def cancelled(self) -> bool: ...

    def set_result(self, result: Answer_contra, /) -> None: ...

    def set_exception(self, exception: BaseException, /) -> None: ...


class SearchDispatcher(Generic[Item, Answer]):
    """`threads` search threads draining one queue; `work(items)` answers a batch (one answer
    or exception per item) on a search thread."""

    def __init__(
        self,
        threads: int,
        work: Callable[[list[Item]], list[Answer | BaseException]],
        omp_threads: int = 1,
    ) -> None:
        self.work = work
        self.omp_threads = omp_threads
        self._loop: asyncio.AbstractEventLoop | None = None  # the loop requests come from
        self._queue: queue.SimpleQueue[tuple[Item, Receiver[Answer]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._serve, name=f"pith-search_{i}", daemon=True)
            for i in range(threads)
        ]
        for thread in self._threads:
            thread.start()

    async def submit(self, item: Item) -> Answer:
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future[Answer]:
        """Queue `item` (from the event loop); the future gets its answer or exception."""
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self.post(item, future)
        return future

    def post(self, item: Item, receiver: Receiver[Answer]) -> None:
        """Queue `item` (from the event loop); `receiver` gets its answer or exception."""
        self._loop = asyncio.get_running_loop()
        self._queue.put((item, receiver))

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join()

    def _serve(self) -> None:
        # the OpenMP team this thread's index calls use (a per-thread setting). The default,
        # one search thread whose team spans the cores, measured 18 % more QPS on 2 cores than
        # one single-threaded search thread per core (side by side, 16 connections): every
        # thread that returns from FAISS must take the GIL back, and search threads doing
        # Python (parsing, hits) kept each other waiting for it; a team's threads never need it
        faiss.omp_set_num_threads(self.omp_threads)
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            live = [(item, receiver) for item, receiver in batch if not receiver.cancelled()]
            if live:
                answers = self._answer([item for item, _ in live])
                loop = self._loop
                assert loop is not None  # post() sets it before queueing anything
                # a closed loop (shutting down): nobody waits for these answers
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(_settle, live, answers)

    def _next_batch(self) -> list[tuple[Item, Receiver[Answer]]] | None:
        """Blocks for the first queued request, then takes what else is queued; None: stop."""
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is None:
                self._queue.put(None)  # this thread's stop comes after this batch
                break
            batch.append(nxt)
        return batch

    def _answer(self, items: list[Item]) -> list[Answer | BaseException]:
        try:
            return self.work(items)
        except Exception as exc:  # the whole batch failed: every request gets the error
            log.exception("search batch failed")
            return [exc] * len(items)


class RoutedDispatcher(Generic[Item, Answer]):
    """Two sets of search threads behind one `post`/`submit`/`close`: items for which
    `second(item)` holds go to `other`, the rest to `main`. The server sends multi-vector
    searches to one single-threaded search thread per core (their Chamfer re-rank runs in
    numpy on the calling thread, so a wide OpenMP team gives them nothing: measured, one
    thread with a team answered 26 % fewer multi-vector searches than two threads), and
    single-vector searches to one thread with a team spanning the cores."""

    def __init__(
        self,
        main: SearchDispatcher[Item, Answer],
        other: SearchDispatcher[Item, Answer],
        second: Callable[[Item], bool],
    ) -> None:
        self.main, self.other, self.second = main, other, second

    def _for(self, item: Item) -> SearchDispatcher[Item, Answer]:
        return self.other if self.second(item) else self.main

    def post(self, item: Item, receiver: Receiver[Answer]) -> None:
        self._for(item).post(item, receiver)

    async def submit(self, item: Item) -> Answer:
        return await self._for(item).submit(item)

    def close(self) -> None:
        self.main.close()
        self.other.close()


def _settle(
    batch: list[tuple[Item, Receiver[Answer]]], answers: list[Answer | BaseException]
) -> None:
    """On the loop: each receiver gets its answer (unless its request was abandoned)."""
    for (_, receiver), answer in zip(batch, answers, strict=True):
        if receiver.cancelled():
            continue
        if isinstance(answer, BaseException):
            receiver.set_exception(answer)
        else:
            receiver.set_result(answer)
