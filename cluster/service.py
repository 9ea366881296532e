"""The ingress side of a cluster: the `Service` interface the HTTP routes call, over a Ray
cluster. Stateless: collections live in the cluster's metadata actor, so several ingress
processes can serve one cluster at once."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray._private import ray_constants
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from cluster.collection import ClusterCollection
from cluster.errors import NotSupported
from cluster.meta import ClusterMeta, Layout
from cluster.ops import unwrap
from cluster.settings import META_NAME, NAMESPACE, ClusterConfig
from core.errors import NotFound
from server.service.embedders import Embedders
from server.service.engines import check_buildable
from server.service.registry import check_name
from server.service.spec import CollectionSpec
from server.settings import Settings

log = logging.getLogger("pith.cluster")
RemoteMeta: Any = ray.remote(ClusterMeta)
NO_SNAPSHOTS = "snapshots are not available in cluster mode (each shard has replicas instead)"


def connect(address: str) -> bool:
    """Join the Ray cluster at `address` unless this process already has; True if it joined.
    A loopback address keeps this process on loopback too."""
    if ray.is_initialized():
        return False
    extra: dict[str, Any] = {}
    if address.startswith(("127.", "localhost")):
        # Ray rewrites a loopback address to the machine's interface address (to be reachable
        # from other nodes); a loopback cluster is reached on loopback only. The switch is
        # the one RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 sets: node addresses are 127.0.0.1.
        ray_constants.ENABLE_RAY_CLUSTER = False
        extra["_node_ip_address"] = "127.0.0.1"
    ray.init(address=address, namespace=NAMESPACE, logging_level=logging.WARNING, **extra)
    return True


class ClusterService:
    """See the module docstring."""

    def __init__(
        self, config: ClusterConfig, embedders: Embedders | None = None, address: str | None = None
    ) -> None:
        self.config = config
        self.embedders = embedders or Embedders()
        self.address = address  # joined in open_all (None: this process is in Ray already)
        self.meta: Any = None
        self._collections: dict[str, ClusterCollection] = {}
        self._lock = threading.Lock()
        self.failed: dict[str, str] = {}
        self.load_s: float | None = None
        self.ready = False
        self.owns_ray = False

    def _join(self) -> None:
        """Join the cluster and find (or start) its metadata actor."""
        if self.address is not None:
            self.owns_ray = connect(self.address)
        here = ray.get_runtime_context().get_node_id()
        self.meta = RemoteMeta.options(
            name=META_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            num_cpus=0,
            max_concurrency=1000,
            scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False),
        ).remote(self.config)

    def _call(self, ref: Any) -> Any:
        return unwrap(ray.get(ref, timeout=self.config.call_timeout_s))

    # start and stop ----------------------------------------------------------------------
    def open_all(self) -> None:
        """Join the cluster and load every collection's layout."""
        start = time.perf_counter()
        self._join()
        for name in self._call(self.meta.names.remote()):
            self._load(name)
        self.load_s = time.perf_counter() - start

    def close_all(self) -> None:
        """Forget the handles (the cluster keeps running); leave Ray if this process joined."""
        self._collections = {}
        if self.owns_ray:
            ray.shutdown()

    # collections -------------------------------------------------------------------------
    def _load(self, name: str) -> ClusterCollection:
        layout: Layout | None = self._call(self.meta.layout.remote(name))
        if layout is None:
            self._collections.pop(name, None)
            raise NotFound(f"collection {name!r} not found")
        collection = ClusterCollection(layout, self.embedders, self.config.call_timeout_s)
        with self._lock:
            self._collections[name] = collection
        return collection

    def collections(self) -> list[ClusterCollection]:
        return list(self._collections.values())

    def names(self) -> list[str]:
        names: list[str] = self._call(self.meta.names.remote())
        return names

    def get(self, name: str) -> ClusterCollection:
        """The collection (asks the metadata actor once for one another ingress created)."""
        collection = self._collections.get(check_name(name))
        return collection if collection is not None else self._load(name)

    def create(
        self,
        name: str,
        spec: CollectionSpec,
        shards: int | None = None,
        replicas: int | None = None,
    ) -> tuple[ClusterCollection, bool]:
        """Create a collection over `shards` shards of `replicas` replicas (defaults from
        the config); the same spec again is a no-op, another spec a conflict."""
        check_name(name)
        check_buildable(spec)
        layout = Layout(
            name,
            json.dumps(spec.to_json(), sort_keys=True),
            shards or self.config.shards,
            replicas or self.config.replicas,
        )
        _, created = self._call(self.meta.create.remote(layout))
        return self._load(name), created

    def delete(self, name: str) -> None:
        check_name(name)
        with self._lock:
            self._collections.pop(name, None)
        self._call(self.meta.delete.remote(name))

    # snapshots: not in cluster mode ------------------------------------------------------
    def snapshot_dir(self, name: str) -> Path:
        raise NotSupported(NO_SNAPSHOTS)

    def list_snapshots(self, name: str) -> list[Any]:
        raise NotSupported(NO_SNAPSHOTS)

    def snapshot_file(self, name: str, snapshot: str) -> Path:
        raise NotSupported(NO_SNAPSHOTS)

    def upload_path(self) -> Path:
        raise NotSupported(NO_SNAPSHOTS)

    def restore(self, name: str, tar_path: Path) -> ClusterCollection:
        raise NotSupported(NO_SNAPSHOTS)


def cluster_service(settings: Settings, embedders: Embedders | None = None) -> ClusterService:
    """The service of `pith serve --cluster ADDRESS` (joins the cluster in `open_all`)."""
    assert settings.cluster is not None
    config = ClusterConfig(
        root=str((settings.data / "cluster").resolve()),
        shards=settings.cluster_shards,
        replicas=settings.cluster_replicas,
        options=settings.options(),
    )
    return ClusterService(config, embedders, settings.cluster)


def shutdown_cluster() -> None:
    """Kill the metadata actor and every collection's actors (tests, benchmarks)."""
    with contextlib.suppress(ValueError):
        meta: Any = ray.get_actor(META_NAME, namespace=NAMESPACE)
        for name in ray.get(meta.names.remote()):
            ray.get(meta.delete.remote(name))
        ray.kill(meta)
