"""The writer's side of a collection: commit a group, follow it in the payload index and the
index, acknowledge; checkpoint when enough was applied or the writer is idle; start training
when the collection reaches its train_size."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from server.service.replay import catch_up
from server.service.state import CollectionState
from server.service.writer import resolve
from server.service.writes import Applied, Delete, Job, WriteResult, commit, follow_payloads

log = logging.getLogger("pith.collection")


def checkpoint(st: CollectionState) -> None:
    """Save the live index as a new checkpoint (writer thread only: nothing else mutates it)."""
    t0 = time.perf_counter()
    live = st.live
    ckpt = st.index_folder.write(live.engine, live.seq, live.next_iid, live.trained)
    st.checkpoint, st.since_checkpoint = ckpt, 0
    if st.training.state != "training":  # a training run replays the log after its snapshot
        st.store.truncate_log(ckpt.seq)
    st.index_folder.prune(ckpt)
    st.telemetry.observe("checkpoint", st.name, time.perf_counter() - t0)


def recover(st: CollectionState) -> None:
    """Reload the last checkpoint and replay the log: the index follows the store again."""
    if st.checkpoint is None:
        return
    engine, folder = st.index_folder.open_live(st.checkpoint, st.spec)
    with st.store.snapshot() as conn:
        counters = catch_up(engine, conn, st.spec, st.checkpoint.seq, st.checkpoint.next_iid)
    old = st.live.swap(engine, folder, st.checkpoint.trained)
    st.live.seq, st.live.next_iid = counters.last_seq, counters.next_iid
    st.index_folder.release(old)


def dirty(st: CollectionState) -> bool:
    """Whether the live index holds ops the last checkpoint does not."""
    return st.checkpoint is None or st.live.seq > st.checkpoint.seq


def _count(op: Applied) -> int:
    return len(op.removed) if isinstance(op.job, Delete) else len(op.added)


class WriteHandler:
    """Commit-and-apply for the collection's `Writer`."""

    def __init__(self, st: CollectionState, start_training: Callable[[], object]) -> None:
        self.st = st
        self._start_training = start_training

    def write(self, jobs: list[Job]) -> None:
        st = self.st
        failed: Exception | None = None
        with st.live.lock.write():
            applied = self._commit(jobs)
            if applied is None:
                return
            try:
                st.live.apply(applied, st.spec.dim)
            except Exception as exc:  # durable, but the index missed it: rebuild it below
                failed = exc
        if failed is not None:
            log.error("applying to the index of %s failed (%s); recovering", st.name, failed)
            for op in applied:
                resolve(op.job.future, error=failed)
            recover(st)
            return
        for op in applied:
            resolve(op.job.future, WriteResult(op.seq, "completed", _count(op)))
        st.since_checkpoint += sum(len(op.added) + len(op.removed) for op in applied)
        if st.since_checkpoint >= st.options.checkpoint_every_points:
            checkpoint(st)
        self.maybe_train()

    def _commit(self, jobs: list[Job]) -> list[Applied] | None:
        """Commit, follow in the payload index, acknowledge the wait=false jobs."""
        st = self.st
        try:
            applied = commit(st.store, st.payloads, jobs)
        except Exception as exc:
            for job in jobs:
                resolve(job.future, error=exc)
            return None
        follow_payloads(st.payloads, applied)
        for op in applied:
            if not op.job.wait:
                resolve(op.job.future, WriteResult(op.seq, "acknowledged", _count(op)))
        return applied

    def idle(self) -> None:
        if dirty(self.st):
            checkpoint(self.st)

    def maybe_train(self) -> None:
        st = self.st
        if st.store.read_only or not st.options.auto_train:
            return
        if st.live.trained or st.training.error is not None:
            return
        if st.training.state == "untrained" and len(st.payloads) >= st.spec.train_size:
            self._start_training()
