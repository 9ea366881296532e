"""One Ray cluster per test module: a head and two worker nodes on 127.0.0.1 only, small
(no dashboard, 100 MB object store per node), started by `ray.cluster_utils.Cluster`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = str(Path(__file__).resolve().parents[2])
NODE: dict[str, Any] = {
    "num_cpus": 1,
    "node_ip_address": "127.0.0.1",
    "object_store_memory": 100 * 2**20,
}


@dataclass
class RayCluster:
    cluster: Any
    workers: list[Any]
    address: str


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[RayCluster]:
    ray = pytest.importorskip("ray")
    import ray._private.services as services
    from ray.cluster_utils import Cluster

    from cluster.service import shutdown_cluster
    from cluster.settings import NAMESPACE

    with pytest.MonkeyPatch.context() as mp:
        # Ray would bind the machine's interface: every node and driver stays on loopback
        mp.setattr(services, "get_node_ip_address", lambda *a, **k: "127.0.0.1")
        # the nodes' workers import this checkout (also before `pip install -e .` ran)
        mp.setenv("PYTHONPATH", os.pathsep.join(p for p in (ROOT, os.getenv("PYTHONPATH")) if p))
        cluster = Cluster(initialize_head=True, head_node_args={**NODE, "include_dashboard": False})
        # the driver joins before the workers exist, so it is attached to the head (the node
        # the tests never kill: the metadata and leader actors run beside the ingress)
        ray.init(address=cluster.address, namespace=NAMESPACE, logging_level=logging.WARNING)
        workers = [cluster.add_node(**NODE) for _ in range(2)]
        try:
            yield RayCluster(cluster, workers, cluster.address)
        finally:
            shutdown_cluster()
            ray.shutdown()
            cluster.shutdown()
