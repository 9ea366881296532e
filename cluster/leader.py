"""The leader of one shard: an asyncio Ray actor that owns the shard's replicas.

Writes: every write gets a place in one order (taken under `order`) and is queued to every
replica; one pump per replica sends them one at a time, so every replica applies the same
writes in the same order. A write is acknowledged once a quorum of replicas has applied it
(each fsyncs its log first). Writes carry an ObjectRef, so vectors go from the ingress
straight to the replicas, not through the leader.

Repair: a replica whose actor died is replaced by a new one rebuilt from a snapshot of a
surviving replica, taken under `order` once the survivor has applied every queued write; the
new replica's queue starts at that point, so it misses nothing. The writes the dead replica
had not acknowledged are covered by the snapshot and count towards their quorum once the new
replica is up. With no survivor the new replica reopens the dead one's folder (its own store).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import RayActorError, RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.files import read_record, write_record
from cluster.ops import Ack, Failed
from cluster.replica import ShardReplica
from cluster.settings import ClusterConfig
from server.service.errors import Unavailable

log = logging.getLogger("pith.cluster.leader")
LOST_S = 60.0  # how long a node that lost a replica gets no new one
COVERED = "covered"  # a dead replica's write, held by the snapshot its replacement restored
RemoteReplica: Any = ray.remote(ShardReplica)


@dataclass(eq=False)
class Link:
    """The leader's side of one replica: its handle, its queue of writes, its state."""

    handle: ActorHandle
    folder: str
    node_id: str = ""
    alive: bool = True
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = field(default_factory=asyncio.Queue)
    last: asyncio.Future[Any] | None = None
    orphans: list[asyncio.Future[Any]] = field(default_factory=list)  # unsettled at its death
    outcome: Any = None  # once repaired: what its orphans resolve to
    pump: asyncio.Task[Any] | None = None

    def settle(self) -> None:
        orphans, self.orphans = self.orphans, []
        for future in orphans:
            if future.done():
                continue
            if isinstance(self.outcome, BaseException):
                future.set_exception(self.outcome)
            else:
                future.set_result(self.outcome)

    def enqueue(self, ref: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.queue.put_nowait((ref, future))
        self.last = future
        return future

    def drain(self) -> list[asyncio.Future[Any]]:
        out = []
        while not self.queue.empty():
            out.append(self.queue.get_nowait()[1])
        return out


class ShardLeader:
    """See the module docstring."""

    def __init__(
        self, collection: str, shard: int, spec_json: str, config: ClusterConfig, replicas: int
    ) -> None:
        self.collection, self.shard, self.spec_json = collection, shard, spec_json
        self.config, self.replicas_wanted = config, replicas
        self.quorum = config.quorum(replicas)
        self.links: list[Link] = []
        self.order = asyncio.Lock()
        self.repairing = asyncio.Lock()
        self.generation = 0
        self.tasks: set[asyncio.Task[Any]] = set()
        self.repairs = 0  # repairs under way
        self.lost_at: dict[str, float] = {}  # node -> when it last lost a replica

    # replicas ------------------------------------------------------------------------------
    async def setup(self) -> None:
        """Start the shard's replicas, each on a node that holds no other replica of it:
        new ones, or (after a restart) the ones on record, each reopening its own store.
        Idempotent: a leader already set up is left as it is."""
        if self.links:
            return
        record = read_record(self._record_path())
        if record is None:
            links = [self._spawn(None, None) for _ in range(self.replicas_wanted)]
        else:
            self.generation = int(record["generation"])
            links = [self._spawn(None, folder) for folder in record["folders"]]
        await asyncio.gather(*(self._start(link) for link in links))
        self._save()
        self._background(self.monitor())

    def _record_path(self) -> Path:
        return Path(self.config.root) / self.collection / f"shard-{self.shard}" / "replicas.json"

    def _save(self) -> None:
        """The replicas' folders on record (what a restarted leader reopens)."""
        folders = [link.folder for link in self.links if link.alive]
        write_record(self._record_path(), {"generation": self.generation, "folders": folders})

    def _folder(self) -> str:
        path = Path(self.config.root) / self.collection / f"shard-{self.shard}"
        return str(path / f"replica-{self.generation}")

    def _pick_node(self) -> str | None:
        """An alive node without a replica of this shard (any alive node if none is left)."""
        used = {link.node_id for link in self.links if link.alive}
        # a node that just lost a replica may be dying, although still listed alive
        recent = {n for n, at in self.lost_at.items() if time.monotonic() - at < LOST_S}
        alive = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"] and n["NodeID"] not in recent)
        free = [n for n in alive if n not in used] or alive
        return free[(self.shard + self.generation) % len(free)] if free else None

    def _spawn(self, restore: bytes | None, folder: str | None) -> Link:
        """A new replica (queued writes wait until it is started)."""
        node = self._pick_node()
        folder = folder or self._folder()
        self.generation += 1
        options: dict[str, Any] = {"num_cpus": 0, "max_concurrency": 8, "max_restarts": 0}
        if node is not None:
            # hard: Ray may place a soft-affine, resource-free actor on any node
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node, soft=False)
        handle = RemoteReplica.options(**options).remote(
            folder, self.collection, self.spec_json, self.config.options, restore
        )
        link = Link(handle, folder, node_id=node or "")
        self.links.append(link)
        return link

    async def _start(self, link: Link) -> None:
        """Wait for a new replica to open, then start sending it its writes."""
        link.node_id = await asyncio.wait_for(link.handle.ping.remote(), self.config.call_timeout_s)
        link.ready.set()
        link.pump = self._background(self._pump(link))

    def _background(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def monitor(self, period_s: float = 1.0) -> None:
        """Ping the replicas, so one that died while idle is replaced before a write or a
        read finds it dead."""
        while True:
            await asyncio.sleep(period_s)
            for link in [x for x in self.links if x.alive and x.ready.is_set()]:
                try:
                    await asyncio.wait_for(link.handle.ping.remote(), self.config.call_timeout_s)
                except RayActorError:
                    self._lost(link, link.drain())
                except (RayError, TimeoutError):
                    continue

    async def _pump(self, link: Link) -> None:
        """Send a replica its writes, one at a time, in order."""
        while True:
            ref, future = await link.queue.get()
            try:
                result = await link.handle.write.remote(ref)
            except RayActorError:
                self._lost(link, [future, *link.drain()])
                return
            except RayError as exc:  # this write's data is gone (its ingress died): its error
                if not future.done():
                    future.set_exception(exc)
                continue
            if not future.done():
                future.set_result(result)

    def _lost(self, link: Link, pending: list[asyncio.Future[Any]]) -> None:
        """A replica died: its unsettled writes wait for its replacement."""
        link.orphans.extend(pending)
        if link.outcome is not None:
            link.settle()
        if not link.alive:
            return
        log.warning("%s/%d lost a replica on node %s", self.collection, self.shard, link.node_id)
        link.alive = False
        self.lost_at[link.node_id] = time.monotonic()
        if link.pump is not None and link.pump is not asyncio.current_task():
            link.pump.cancel()
        self.repairs += 1
        self._background(self._repair(link))

    async def _repair(self, dead: Link) -> None:
        try:  # counted from _lost on, so a write arriving meanwhile waits for the replacement
            await self._repair_once(dead)
        finally:
            self.repairs -= 1

    async def _repair_once(self, dead: Link) -> None:
        async with self.repairing:
            while True:
                survivors = [x for x in self.links if x.alive and x.ready.is_set()]
                if not survivors:
                    await self._reopen(dead)
                    return
                try:
                    await self._copy(survivors[0], dead)
                    return
                except (RayError, TimeoutError) as exc:  # survivor or new replica died: again
                    log.warning("repair of %s/%d failed: %r", self.collection, self.shard, exc)
                    await asyncio.sleep(1.0)

    async def _copy(self, survivor: Link, dead: Link) -> None:
        async with self.order:  # no new writes meanwhile: the snapshot is at a cut
            if survivor.last is not None:
                await asyncio.wait([survivor.last], timeout=self.config.call_timeout_s)
            if not survivor.alive:
                raise RayActorError()
            tar = await survivor.handle.snapshot.remote()
            new = self._spawn(tar, None)  # enqueued from here on; started below
        try:
            await self._start(new)
        except (RayError, TimeoutError):
            new.alive = False
            self.lost_at[new.node_id] = time.monotonic()
            self._discard(new)
            raise
        self._discard(dead)
        self._save()
        dead.outcome = COVERED
        dead.settle()

    async def _reopen(self, dead: Link) -> None:
        """No replica survived: the writes in flight are unknown (refused), and a new
        replica reopens the dead one's folder."""
        dead.outcome = Unavailable("every replica of the shard was lost")
        dead.settle()
        async with self.order:
            new = self._spawn(None, dead.folder)
        self._discard(dead)
        self._save()
        with contextlib.suppress(RayError):
            await self._start(new)

    def _discard(self, link: Link) -> None:
        if link in self.links:
            self.links.remove(link)

    # the API -------------------------------------------------------------------------------
    async def write(self, wrapped: list[Any]) -> Ack | Failed:
        """Apply a write (an ObjectRef in a list, so it reaches the replicas unresolved)."""
        deadline = time.monotonic() + self.config.call_timeout_s
        while self.repairs and self._alive() < self.quorum and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # a replacement is on its way: wait for its queue
        async with self.order:
            futures = [link.enqueue(wrapped[0]) for link in self.links if link.alive]
        return await self._quorum(futures)

    def _alive(self) -> int:
        return sum(link.alive for link in self.links)

    async def _quorum(self, futures: list[asyncio.Future[Any]]) -> Ack | Failed:
        acks: list[Any] = []
        pending = set(futures)
        while pending and len(acks) < self.quorum:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                if future.exception() is not None:
                    continue
                if isinstance(future.result(), Failed):  # the same on every replica
                    return future.result()
                acks.append(future.result())
        real = [a for a in acks if isinstance(a, Ack)]
        if len(acks) < self.quorum or not real:
            return Failed(Unavailable(f"shard {self.shard}: fewer than {self.quorum} replicas"))
        return real[0]

    async def replicas(self) -> list[ActorHandle]:
        """The replicas that serve reads now."""
        return [link.handle for link in self.links if link.alive and link.ready.is_set()]

    async def topology(self) -> list[dict[str, Any]]:
        return [
            {"node": link.node_id, "folder": link.folder, "ready": link.ready.is_set()}
            for link in self.links
            if link.alive
        ]

    async def train(self) -> str | Failed:
        """Train every replica (each fits the same spec, with the same seed, on its points)."""
        handles = await self.replicas()
        states: list[Any] = await asyncio.gather(*(h.train.remote() for h in handles))
        failed = [s for s in states if isinstance(s, Failed)]
        return failed[0] if failed else str(states[0])

    async def drop(self) -> None:
        """Close every replica and delete its folder."""
        for task in list(self.tasks):
            task.cancel()
        for link in self.links:
            with contextlib.suppress(RayError):
                await link.handle.close.remote(True)
            ray.kill(link.handle)
        self.links = []
        self._record_path().unlink(missing_ok=True)
