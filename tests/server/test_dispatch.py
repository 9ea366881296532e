"""SearchDispatcher (server/dispatch.py): requests queued while the search threads are busy
are answered together in one batch; a batch that fails fails each of its requests; an
abandoned request is skipped; close() stops the threads."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from server.dispatch import RoutedDispatcher, SearchDispatcher


class Work:
    """Records each batch; the first one blocks until released, so the rest pile up."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = threading.Event()

    def __call__(self, items: list[int]) -> list[int | BaseException]:
        self.batches.append(items)
        if len(self.batches) == 1:
            self.release.wait(10)
        if -1 in items:
            raise ValueError("bad batch")
        return [i * 10 for i in items]


async def _settle_all(futures: list[asyncio.Future[int]]) -> list[object]:
    return await asyncio.gather(*futures, return_exceptions=True)


def test_requests_queued_while_busy_go_in_one_batch() -> None:
    work = Work()
    dispatcher: SearchDispatcher[int, int] = SearchDispatcher(1, work)

    async def scenario() -> list[object]:
        first = dispatcher.enqueue(0)
        while not work.batches:  # the thread holds request 0
            await asyncio.sleep(0.001)
        rest = [dispatcher.enqueue(i) for i in range(1, 6)]
        work.release.set()
        return await _settle_all([first, *rest])

    try:
        assert asyncio.run(scenario()) == [0, 10, 20, 30, 40, 50]
        assert work.batches == [[0], [1, 2, 3, 4, 5]]
    finally:
        dispatcher.close()


def test_a_failed_batch_fails_each_request_and_a_cancelled_one_is_skipped() -> None:
    work = Work()
    dispatcher: SearchDispatcher[int, int] = SearchDispatcher(1, work)

    async def scenario() -> list[object]:
        first = dispatcher.enqueue(0)
        while not work.batches:
            await asyncio.sleep(0.001)
        abandoned = dispatcher.enqueue(7)
        abandoned.cancel()
        failing = [dispatcher.enqueue(-1), dispatcher.enqueue(3)]
        work.release.set()
        return await _settle_all([first, *failing])

    try:
        first, bad, other = asyncio.run(scenario())
        assert first == 0 and work.batches[1] == [-1, 3]  # the cancelled 7 was never searched
        assert isinstance(bad, ValueError) and isinstance(other, ValueError)
    finally:
        dispatcher.close()


@pytest.mark.parametrize("threads", [1, 3])
def test_close_stops_every_thread(threads: int) -> None:
    work = Work()
    work.release.set()
    dispatcher: SearchDispatcher[int, int] = SearchDispatcher(threads, work)

    async def one() -> int:
        return await dispatcher.submit(4)

    assert asyncio.run(one()) == 40
    dispatcher.close()
    assert not any(t.is_alive() for t in dispatcher._threads)


def test_search_threads_run_index_calls_on_their_openmp_team() -> None:
    import faiss

    def work(items: list[int]) -> list[int | BaseException]:
        return [faiss.omp_get_max_threads() for _ in items]

    dispatcher: SearchDispatcher[int, int] = SearchDispatcher(1, work, omp_threads=3)

    async def scenario() -> list[object]:
        return await _settle_all([dispatcher.enqueue(0)])

    try:
        assert asyncio.run(scenario()) == [3]
    finally:
        dispatcher.close()


def test_the_search_team_shares_the_cores_among_the_search_threads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from server.settings import Settings

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert Settings().search_threads == 1
    assert Settings().search_team() == 8
    assert Settings(search_threads=4).search_team() == 2
    assert Settings(search_threads=16).search_team() == 1
    assert Settings(search_threads=2, search_omp_threads=3).search_team() == 3
    assert Settings().multivector_search_threads == 8


def test_routed_items_go_to_their_own_search_threads() -> None:
    def named(tag: str) -> Any:
        def work(items: list[int]) -> list[str | BaseException]:
            return [f"{tag}:{threading.get_ident()}" for _ in items]

        return work

    main: SearchDispatcher[int, str] = SearchDispatcher(1, named("main"))
    other: SearchDispatcher[int, str] = SearchDispatcher(2, named("other"))
    routed = RoutedDispatcher(main, other, lambda item: item < 0)

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(routed.submit(i) for i in (1, -1, 2, -2))))

    try:
        answers = asyncio.run(scenario())
    finally:
        routed.close()
    assert [a.split(":")[0] for a in answers] == ["main", "other", "main", "other"]
    main_threads = {str(t.ident) for t in main._threads}
    other_threads = {str(t.ident) for t in other._threads}
    assert {a.split(":")[1] for a in answers[0::2]} <= main_threads
    assert {a.split(":")[1] for a in answers[1::2]} <= other_threads
    assert not any(t.is_alive() for t in [*main._threads, *other._threads])
