"""The ingress side of a cluster collection: the same interface the HTTP routes call on a
single-node `Collection`, served by the shards' leaders (writes) and replicas (reads)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import ray
from ray.actor import ActorHandle
from ray.exceptions import GetTimeoutError, RayActorError, RayError

from cluster.errors import NotSupported
from cluster.merge import merge_hits, merge_writes
from cluster.meta import Layout
from cluster.ops import DeleteOp, UpsertOp, WriteOp, unwrap
from cluster.routing import decode_cursor, encode_cursor, shard_of, split_keys
from cluster.settings import NAMESPACE, leader_name
from core.errors import InvalidInput
from server.service.collection import MAX_K, Hit, Point, Query
from server.service.embedders import Embedders
from server.service.errors import Unavailable
from server.service.filters import Filter
from server.service.inputs import spec_embed, spec_vectors
from server.service.spec import CollectionSpec
from server.service.vectors import Vectors
from server.service.writes import WriteResult


class _Training:
    """`collection.st.training.state`, as the train route reads it."""

    def __init__(self, collection: ClusterCollection) -> None:
        self._collection = collection

    @property
    def state(self) -> str:
        states = self._collection.read_all("training_state")
        return "training" if "training" in states else str(states[0])


class _State:
    def __init__(self, collection: ClusterCollection) -> None:
        self.training = _Training(collection)


def _combine(refs: list[Any], merge: Callable[[list[Any]], Any]) -> Future[Any]:
    """One future over several Ray calls: `merge` of their values once all are in."""
    out: Future[Any] = Future()
    futures = [ref.future() for ref in refs]
    remaining = [len(futures)]
    lock = threading.Lock()

    def finish(_: Any) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        try:
            out.set_result(merge([unwrap(f.result()) for f in futures]))
        except RayError as exc:
            out.set_exception(Unavailable(f"a shard did not answer: {type(exc).__name__}"))
        except BaseException as exc:
            out.set_exception(exc)

    for future in futures:
        future.add_done_callback(finish)
    return out


READ_ROUNDS = 3  # rounds over a shard's replicas after one failed


class ClusterCollection:
    """See the module docstring."""

    def __init__(self, layout: Layout, embedders: Embedders, timeout_s: float) -> None:
        self.name = layout.name
        self.spec = CollectionSpec.model_validate_json(layout.spec_json)
        self.shards = layout.shards
        self.embedders = embedders
        self.timeout_s = timeout_s
        self.st = _State(self)
        self.leaders = [
            ray.get_actor(leader_name(self.name, s), namespace=NAMESPACE)
            for s in range(self.shards)
        ]
        self._replicas: dict[int, list[ActorHandle]] = {}
        self._turn = itertools.count()

    # inputs (as `Collection`) ------------------------------------------------------------
    def vectors(
        self, data: object, offsets: object | None = None, name: str = "vectors"
    ) -> Vectors:
        """Validate raw vectors (or packed token vectors) into the stored form."""
        return spec_vectors(self.spec, data, offsets, name)

    def embed(self, texts: list[str], name: str = "text") -> Vectors:
        """Texts -> vectors with the collection's embedder (pooled, or tokens if multi)."""
        return spec_embed(self.spec, self.embedders, self.name, texts, name)

    # writes ------------------------------------------------------------------------------
    def upsert(
        self, keys: list[str], vectors: Vectors, payloads: list[dict[str, Any] | None], wait: bool
    ) -> Future[WriteResult]:
        """Each shard's points to its leader; resolves once every shard has a quorum."""
        if not (len(keys) == len(vectors) == len(payloads)):
            raise InvalidInput(
                f"{len(keys)} ids for {len(vectors)} vectors and {len(payloads)} payloads"
            )
        ops: dict[int, WriteOp] = {}
        for shard, pos in split_keys(keys, self.shards).items():
            part = vectors if len(pos) == len(keys) else vectors.take(pos)
            chosen = pos.tolist()
            ops[shard] = UpsertOp(
                [keys[i] for i in chosen], part, [payloads[i] for i in chosen], wait
            )
        return self._write(ops)

    def delete(self, keys: list[str] | None, flt: Filter | None, wait: bool) -> Future[WriteResult]:
        """Delete by key (to the keys' shards) or by filter (to every shard)."""
        if (keys is None) == (flt is None):
            raise InvalidInput("delete takes either ids or a filter")
        if keys is None:
            ops: dict[int, WriteOp] = {s: DeleteOp(None, flt, wait) for s in range(self.shards)}
        else:
            parts = split_keys(keys, self.shards)
            ops = {s: DeleteOp([keys[i] for i in p.tolist()], None, wait) for s, p in parts.items()}
        return self._write(ops)

    def _write(self, ops: dict[int, WriteOp]) -> Future[WriteResult]:
        refs = [self.leaders[s].write.remote([ray.put(op)]) for s, op in ops.items()]
        return _combine(refs, merge_writes)

    def train(self) -> Future[str]:
        """Train every replica of every shard."""
        return _combine([leader.train.remote() for leader in self.leaders], lambda s: s[0])

    def snapshot(self, target: object) -> Future[Any]:
        raise NotSupported("snapshots are not available in cluster mode (replicas are the copies)")

    # reads -------------------------------------------------------------------------------
    def _pick(self, shard: int, fresh: bool = False) -> ActorHandle:
        """A replica of the shard that serves reads (round robin over the leader's list)."""
        if fresh or not self._replicas.get(shard):
            try:
                handles = ray.get(self.leaders[shard].replicas.remote(), timeout=self.timeout_s)
            except RayError as exc:  # the leader is gone (the collection was deleted)
                raise Unavailable(f"shard {shard} of {self.name!r}: no leader ({exc})") from exc
            if not handles:
                raise Unavailable(f"shard {shard} of {self.name!r} has no replica up")
            self._replicas[shard] = handles
        handles = self._replicas[shard]
        return handles[next(self._turn) % len(handles)]

    def read(self, method: str, shards: Sequence[int], *args: Any) -> list[Any]:
        """`method(*args)` on one replica of each shard; a dead replica is skipped once."""
        refs = [getattr(self._pick(s), method).remote(*args) for s in shards]
        out = []
        for shard, ref in zip(shards, refs, strict=True):
            try:
                value = ray.get(ref, timeout=self.timeout_s)
            except (RayActorError, GetTimeoutError):
                value = self._read_again(shard, method, args)
            out.append(unwrap(value))
        return out

    def _read_again(self, shard: int, method: str, args: tuple[Any, ...]) -> Any:
        """After a replica failed: every replica the leader lists, a few rounds (the leader
        may still list a replica that just died until its next health ping)."""
        last: Exception | None = None
        for attempt in range(READ_ROUNDS):
            self._pick(shard, fresh=True)  # the shard's replica list, fresh from its leader
            for handle in list(self._replicas[shard]):
                try:
                    return ray.get(getattr(handle, method).remote(*args), timeout=self.timeout_s)
                except RayError as exc:
                    last = exc
            time.sleep(0.5 * (attempt + 1))
        name = type(last).__name__ if last is not None else "no replica"
        raise Unavailable(f"shard {shard} did not answer: {name}") from last

    def read_all(self, method: str, *args: Any) -> list[Any]:
        return self.read(method, range(self.shards), *args)

    def search(self, query: Query) -> list[list[Hit]]:
        """Top-k per query: the shards' top-k lists merged."""
        if not 1 <= query.k <= MAX_K:
            raise InvalidInput(f"k must be in [1, {MAX_K}], got {query.k}")
        per_shard = self.read_all("search", query)
        return merge_hits(per_shard, query.k, smaller_first=self.spec.metric == "l2")

    def get(self, key: str, with_vector: bool) -> Point:
        point: Point = self.read("get", [shard_of(key, self.shards)], key, with_vector)[0]
        return point

    def scroll(
        self, flt: Filter | None, cursor: int, limit: int, with_payload: bool, with_vectors: bool
    ) -> tuple[list[Point], int | None]:
        """Shard after shard, each in insertion order; the cursor names shard and position."""
        shard, after = decode_cursor(cursor)
        if shard >= self.shards:
            raise InvalidInput(f"cursor {cursor}: not a cursor returned by scroll")
        points: list[Point] = []
        while shard < self.shards and len(points) < limit:
            page, more = self.read(
                "scroll", [shard], flt, after, limit - len(points), with_payload, with_vectors
            )[0]
            points.extend(p for _, p in page)
            if more:
                return points, encode_cursor(shard, page[-1][0])
            shard, after = shard + 1, -1
        return points, (encode_cursor(shard, -1) if shard < self.shards else None)

    def count(self, flt: Filter | None) -> int:
        return int(sum(self.read_all("count", flt)))

    def info(self) -> dict[str, Any]:
        """The shards' sizes summed; training as the first shard reports it; the layout."""
        infos = self.read_all("info")
        summed = {k: sum(i[k] for i in infos) for k in SUMMED}
        topology: list[Any] = ray.get(
            [leader.topology.remote() for leader in self.leaders], timeout=self.timeout_s
        )
        return {
            **infos[0],
            **summed,
            "applied_seq": max(i["applied_seq"] for i in infos),
            "checkpoint_seq": None,
            "cluster": {"shards": [{"shard": s, "replicas": r} for s, r in enumerate(topology)]},
        }


SUMMED = (
    "points",
    "indexed_points",
    "bytes_in_ram",
    "bytes_on_disk",
    "index_bytes_on_disk",
    "store_bytes_on_disk",
    "pending_operations",
)
