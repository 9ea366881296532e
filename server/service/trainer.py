"""Background training: fit the collection's encoder and index on a seeded sample, fill the
new index with every live point, replay what arrived meanwhile, and swap it in atomically
on the writer thread (searches keep answering from the old index until then). Closing the
collection stops a run between two of those steps (`Training.stop`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from server.service.engines import CollectionIndex, final_engine
from server.service.errors import Unavailable
from server.service.maintenance import checkpoint
from server.service.replay import catch_up, fill, read_sample
from server.service.state import CollectionState
from server.service.store import Counters, storage_error
from server.service.writer import Control, resolve

log = logging.getLogger("pith.trainer")
Submit = Callable[[Control], Future[Any]]


def start_training(st: CollectionState, submit: Submit) -> Future[str]:
    """Start a training run in a thread (or join the running one); the future resolves to
    "trained" once the new index serves searches."""
    done: Future[str] = Future()
    if not st.training.begin():
        return st.training.future or done
    st.training.future = done
    thread = threading.Thread(
        target=_run, args=(st, submit, done), name=f"pith-train-{st.name}", daemon=True
    )
    st.training.thread = thread
    thread.start()
    return done


def _go_on(st: CollectionState) -> None:
    """Raise Unavailable once the collection asked the run to stop (`Training.stop`)."""
    if st.training.cancel.is_set():
        raise Unavailable(f"collection {st.name!r} closed while training; train again")


def _run(st: CollectionState, submit: Submit, done: Future[str]) -> None:
    folder: Path | None = None
    try:
        folder = st.index_folder.allocate()
        t0 = time.perf_counter()
        engine, counters = _build(st, folder)
        swap = Control(lambda: _swap_in(st, engine, folder, counters))
        submit(swap).result()
        st.telemetry.observe("index_build", st.name, time.perf_counter() - t0)
        resolve(done, "trained")
    except BaseException as exc:
        cancelled = st.training.cancel.is_set()
        log.log(logging.INFO if cancelled else logging.WARNING, "training %s: %s", st.name, exc)
        if folder is not None and st.live.folder != folder:
            st.index_folder.release(folder)
        error = None if cancelled else f"{type(exc).__name__}: {exc}"
        st.training.finish(st.live.trained, error=error)
        resolve(done, error=storage_error(exc, "training") or exc)


def _build(st: CollectionState, folder: Path) -> tuple[CollectionIndex, Counters]:
    """Train on a sample, fill with all points, replay what came meanwhile (off the writer)."""
    sample = read_sample(st.store, st.spec, st.options.train_sample, st.options.seed)
    _go_on(st)
    engine = final_engine(st.spec, folder)
    t0 = time.perf_counter()
    engine.train(sample)
    st.telemetry.observe("training", st.name, time.perf_counter() - t0)
    del sample
    _go_on(st)
    with st.store.snapshot() as conn:
        counters = fill(engine, conn, st.spec)
    _go_on(st)
    with st.store.snapshot() as conn:
        return engine, catch_up(engine, conn, st.spec, counters.last_seq, counters.next_iid)


def _swap_in(st: CollectionState, engine: CollectionIndex, folder: Path, at: Counters) -> None:
    """On the writer thread: replay the last ops, swap, checkpoint the trained index."""
    with st.store.snapshot() as conn:
        catch_up(engine, conn, st.spec, at.last_seq, at.next_iid)
    old = st.live.swap(engine, folder, trained=True)
    st.index_folder.release(old)
    st.training.finish(True)
    try:
        checkpoint(st)
    except Exception as exc:  # the swap stands: the log still holds every write after the
        log.warning("checkpoint after training %s failed: %s", st.name, exc)  # last checkpoint
