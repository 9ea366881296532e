"""The one writer of a collection: a thread that takes queued jobs in order, groups
consecutive writes into one commit, and runs control tasks (checkpoint, swap, snapshot)
between groups, where the store and the index agree."""

from __future__ import annotations

import collections
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Protocol

from server.service.errors import Unavailable
from server.service.writes import Delete, Job

log = logging.getLogger("pith.writer")
MAX_GROUP_POINTS = 20_000
MAX_GROUP_JOBS = 64


@dataclass
class Control:
    """A task run on the writer thread between groups (its result resolves `future`)."""

    action: Callable[[], Any]
    future: Future[Any] = field(default_factory=Future)
    size: int = 0


Task = Job | Control


class Handler(Protocol):
    """What the writer drives: commit-and-apply a group, and idle-time upkeep."""

    def write(self, jobs: list[Job]) -> None: ...

    def idle(self) -> None: ...


def resolve(future: Future[Any], value: Any = None, error: BaseException | None = None) -> None:
    """Settle a future unless its waiter went away (a cancelled future stays cancelled)."""
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _starts_alone(task: Task) -> bool:
    """Control tasks and filter deletes run at the head of their own group."""
    return isinstance(task, Control) or (isinstance(task, Delete) and task.filter is not None)


class Writer:
    """A thread per collection (see the module docstring)."""

    def __init__(self, name: str, handler: Handler, idle_s: float) -> None:
        self._handler = handler
        self._idle_s = idle_s
        self._queue: queue.SimpleQueue[Task | None] = queue.SimpleQueue()
        self._ahead: collections.deque[Task | None] = collections.deque()
        self._lock = threading.Lock()
        self._pending = 0
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"pith-writer-{name}", daemon=True)
        self._thread.start()

    @property
    def pending(self) -> int:
        """Jobs submitted and not yet applied."""
        return self._pending

    def submit(self, task: Task) -> Future[Any]:
        with self._lock:
            if self._stopping:
                raise Unavailable("collection is closing")
            self._pending += 1
            self._queue.put(task)
        return task.future

    def stop(self, timeout_s: float = 120.0) -> None:
        """Finish the queued tasks, then end the thread."""
        with self._lock:
            if self._stopping:
                return
            self._stopping = True
            self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout_s)

    # the thread --------------------------------------------------------------------------
    def _next(self, timeout: float | None) -> Task | None:
        if self._ahead:
            return self._ahead.popleft()
        return self._queue.get(timeout=timeout)

    def _peek(self) -> Task | bool | None:
        """The next task without waiting; False when there is none."""
        if not self._ahead:
            try:
                self._ahead.append(self._queue.get_nowait())
            except queue.Empty:
                return False
        return self._ahead[0]

    def _group(self, first: Job) -> list[Job]:
        group, points = [first], first.size
        while points < MAX_GROUP_POINTS and len(group) < MAX_GROUP_JOBS:
            nxt = self._peek()
            if nxt is False or nxt is None or _starts_alone(nxt):  # type: ignore[arg-type]
                break
            task = self._ahead.popleft()
            assert not isinstance(task, Control) and task is not None
            group.append(task)
            points += task.size
        return group

    def _run(self) -> None:
        while True:
            try:
                task = self._next(self._idle_s)
            except queue.Empty:
                self._guard(self._handler.idle)
                continue
            if task is None:
                return
            if isinstance(task, Control):
                self._control(task)
                continue
            group = [task] if _starts_alone(task) else self._group(task)
            self._guard(lambda g=group: self._handler.write(g))  # type: ignore[misc]
            for job in group:
                if not job.future.done():  # the handler failed before settling it
                    resolve(job.future, error=Unavailable("write was not processed"))
            self._done(len(group))

    def _control(self, task: Control) -> None:
        try:
            resolve(task.future, task.action())
        except BaseException as exc:
            log.exception("writer task failed")
            resolve(task.future, error=exc)
        self._done(1)

    def _done(self, n: int) -> None:
        with self._lock:
            self._pending -= n

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # the writer must outlive one bad group; futures carry the error
            log.exception("writer step failed")
