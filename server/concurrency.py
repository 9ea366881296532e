"""The bounded thread pool CPU-heavy work runs in (parse, encode, search, train, snapshot),
so the event loop only routes requests."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")


class CpuPool:
    """At most `threads` jobs at once; create it inside the event loop (lifespan)."""

    def __init__(self, threads: int) -> None:
        self.limiter = anyio.CapacityLimiter(threads)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await anyio.to_thread.run_sync(fn, *args, limiter=self.limiter)


async def wait_for(future: Future[T]) -> T:
    """Await a writer's concurrent future without blocking the loop."""
    return await asyncio.wrap_future(future)
