"""Cluster metadata: one named, detached asyncio actor that knows every collection (its spec,
shards and replicas) and creates or drops its shard leaders, so any number of stateless
ingress processes can serve one cluster. The layouts are kept on disk (cluster.json under
the cluster's data folder), so a restarted cluster serves its collections again."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.files import read_record, write_record
from cluster.leader import ShardLeader
from cluster.ops import Failed
from cluster.settings import NAMESPACE, ClusterConfig, leader_name
from core.errors import Conflict, NotFound

RemoteLeader: Any = ray.remote(ShardLeader)
log = logging.getLogger("pith.cluster.meta")
LAYOUT_FILE = "cluster.json"  # the collections, beside the replicas' folders


@dataclass(frozen=True)
class Layout:
    """What an ingress needs to serve a collection."""

    name: str
    spec_json: str
    shards: int
    replicas: int


class ClusterMeta:
    """See the module docstring."""

    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.path = Path(config.root) / LAYOUT_FILE
        record = read_record(self.path)
        layouts = [Layout(**x) for x in record["collections"]] if record else []
        self.layouts: dict[str, Layout] = {x.name: x for x in layouts}
        self.opened = False
        self.lock = asyncio.Lock()

    async def _open(self) -> None:
        """Once: the leaders of the collections on disk (after a restart of the cluster they
        reopen their replicas' folders; leaders still running are found, not replaced)."""
        if self.opened:
            return
        self.opened = True
        for layout in self.layouts.values():
            leaders = [self._leader(layout, shard) for shard in range(layout.shards)]
            outcomes = await asyncio.gather(
                *(leader.setup.remote() for leader in leaders), return_exceptions=True
            )
            for outcome in outcomes:  # a shard that cannot reopen leaves the others serving
                if isinstance(outcome, BaseException):
                    log.error("collection %s: a shard did not reopen: %r", layout.name, outcome)

    def _save(self) -> None:
        write_record(self.path, {"collections": [asdict(x) for x in self.layouts.values()]})

    async def create(self, layout: Layout) -> tuple[Layout, bool] | Failed:
        """Create a collection (a no-op for the same spec, a conflict for another one)."""
        async with self.lock:
            await self._open()
            existing = self.layouts.get(layout.name)
            if existing is not None:
                if json.loads(existing.spec_json) != json.loads(layout.spec_json):
                    return Failed(Conflict(f"collection {layout.name!r} exists with another spec"))
                return existing, False
            leaders = [self._leader(layout, shard) for shard in range(layout.shards)]
            try:
                await asyncio.gather(*(leader.setup.remote() for leader in leaders))
            except BaseException:
                await self._drop(leaders)
                raise
            self.layouts[layout.name] = layout
            self._save()
            return layout, True

    def _leader(self, layout: Layout, shard: int) -> Any:
        # leaders run beside this actor (the head node, in a cluster started by `ray start
        # --head` before the ingress): they hold no data, a replica holds the shard's
        here = ray.get_runtime_context().get_node_id()
        return RemoteLeader.options(
            name=leader_name(layout.name, shard),
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        ).remote(layout.name, shard, layout.spec_json, self.config, layout.replicas)

    async def layout(self, name: str) -> Layout | None:
        async with self.lock:
            await self._open()
        return self.layouts.get(name)

    async def names(self) -> list[str]:
        async with self.lock:
            await self._open()
        return sorted(self.layouts)

    async def delete(self, name: str) -> Failed | None:
        async with self.lock:
            await self._open()
            layout = self.layouts.pop(name, None)
            if layout is None:
                return Failed(NotFound(f"collection {name!r} not found"))
            self._save()
            leaders = []
            for shard in range(layout.shards):
                with contextlib.suppress(ValueError):
                    leaders.append(ray.get_actor(leader_name(name, shard), namespace=NAMESPACE))
            await self._drop(leaders)
            return None

    async def _drop(self, leaders: list[Any]) -> None:
        for leader in leaders:
            with contextlib.suppress(RayError):
                await leader.drop.remote()
            ray.kill(leader)
