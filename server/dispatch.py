"""Micro-batching of concurrent searches, on the event loop's side: requests queue up while
the search threads are busy and go to them together, one hand-off per batch (not per query),
one index call per group of compatible queries. Under light load a query is dispatched at
once; under load batches grow and the per-request thread and GIL hand-offs disappear."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import faiss

MAX_BATCH = 64
Item = TypeVar("Item")
Answer = TypeVar("Answer")


def _single_omp_thread() -> None:
    # one OpenMP thread per search thread (a per-thread setting): the search threads use the
    # cores; OpenMP teams spinning after every small batch starve the event loop (measured:
    # one search thread with a 2-wide team serves a third of what two 1-wide threads do)
    faiss.omp_set_num_threads(1)


class SearchDispatcher(Generic[Item, Answer]):
    """At most `threads` batches in flight in a bounded executor; the rest queue on the loop.
    `work(items)` answers a batch (one answer or exception per item) on a search thread."""

    def __init__(
        self, threads: int, work: Callable[[list[Item]], list[Answer | BaseException]]
    ) -> None:
        self.threads = threads
        self.work = work
        self.executor = ThreadPoolExecutor(threads, "pith-search", initializer=_single_omp_thread)
        self._pending: list[tuple[Item, asyncio.Future[Answer]]] = []
        self._in_flight = 0
        self._scheduled = False

    async def submit(self, item: Item) -> Answer:
        return await self.enqueue(item)

    def enqueue(self, item: Item) -> asyncio.Future[Answer]:
        """Queue `item` (from the event loop); the future gets its answer or exception."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        self._pending.append((item, future))
        self._kick(loop)
        return future

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._pending and self._in_flight < self.threads and not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._dispatch, loop)  # after the requests already readable

    def _dispatch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        batch = [item for item in self._pending[:MAX_BATCH] if not item[1].cancelled()]
        del self._pending[:MAX_BATCH]
        if batch:
            self._in_flight += 1
            work = loop.run_in_executor(self.executor, self.work, [item for item, _ in batch])
            work.add_done_callback(lambda done: self._finish(loop, batch, done))
        self._kick(loop)

    def _finish(
        self, loop: asyncio.AbstractEventLoop, batch: list[Any], done: asyncio.Future[Any]
    ) -> None:
        self._in_flight -= 1
        error = done.exception()
        results = [error] * len(batch) if error is not None else done.result()
        for (_, future), result in zip(batch, results, strict=True):
            if future.cancelled():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
        self._kick(loop)

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)
