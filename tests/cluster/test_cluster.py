"""Cluster mode on a 3-node Ray cluster on one machine: a node killed during ingestion loses
no acknowledged write, searches keep answering, the shard is repaired onto a live node, and
recall@10 against exact search is what it was; the REST API serves the cluster unchanged."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cluster.service import ClusterService
from cluster.settings import ClusterConfig
from server.service.collection import Query
from server.service.options import Options
from server.service.spec import CollectionSpec

pytestmark = pytest.mark.slow

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
    """A head and two worker nodes on 127.0.0.1 only, small (no dashboard, 100 MB object
    store per node), started by `ray.cluster_utils.Cluster`; one per module (slow to start)."""
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


N, DIM, BATCH, K = 2400, 32, 100, 10


def clustered(n: int, seed: int) -> np.ndarray:
    """Seeded unit vectors around 16 centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((16, DIM)).astype(np.float32)
    x = (centres[rng.integers(0, 16, n)] + 0.6 * rng.standard_normal((n, DIM))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_ids(xq: np.ndarray, xb: np.ndarray) -> np.ndarray:
    """Exact inner-product top-k ids (the oracle)."""
    return np.argsort(-(xq @ xb.T), axis=1, kind="stable")[:, :K]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return sum(len(np.intersect1d(f, t)) for f, t in zip(found, truth, strict=True)) / truth.size


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The data folder of every ingress of this module (the replicas live in its cluster/)."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def service(ray_cluster: Any, data_dir: Path) -> ClusterService:
    root = data_dir / "cluster"
    config = ClusterConfig(root=str(root), shards=2, replicas=2, options=Options(seed=0))
    svc = ClusterService(config)
    svc.open_all()
    return svc


def _topology(collection: Any) -> list[list[dict[str, Any]]]:
    import ray

    return ray.get([leader.topology.remote() for leader in collection.leaders])


def _search_ids(collection: Any, xq: np.ndarray) -> np.ndarray:
    hits = collection.search(Query(collection.vectors(xq), K, with_payload=False))
    return np.array([[h.id for h in q] for q in hits])


class Ingest(threading.Thread):
    """Upserts batches in order, retrying a refused batch; records what was acknowledged."""

    def __init__(self, collection: Any, xb: np.ndarray) -> None:
        super().__init__(daemon=True)
        self.collection, self.xb = collection, xb
        self.acked: list[int] = []
        self.refusals = 0

    def run(self) -> None:
        for start in range(0, len(self.xb), BATCH):
            ids = list(range(start, min(start + BATCH, len(self.xb))))
            for _ in range(5):
                try:
                    vectors = self.collection.vectors(self.xb[ids])
                    payloads = [{"i": i} for i in ids]
                    self.collection.upsert([str(i) for i in ids], vectors, payloads, True).result()
                except Exception:
                    self.refusals += 1
                    time.sleep(0.5)
                    continue
                self.acked.extend(ids)
                break


def test_node_killed_during_ingestion(ray_cluster: Any, service: ClusterService) -> None:
    import ray

    xb, xq = clustered(N, seed=3), clustered(40, seed=4)
    collection, created = service.create(
        "kill", CollectionSpec.model_validate({"dim": DIM, "metric": "ip"})
    )
    assert created
    ingest = Ingest(collection, xb)
    ingest.start()
    while len(ingest.acked) < N // 3:
        time.sleep(0.05)
    # kill the worker node holding the most replicas, in the middle of the ingestion (not
    # the driver's node, where the metadata and leader actors run)
    shards = _topology(collection)
    assert all(len({r["node"] for r in shard}) == 2 for shard in shards)
    nodes = [r["node"] for shard in shards for r in shard]
    here = ray.get_runtime_context().get_node_id()
    candidates = [w for w in ray_cluster.workers if w.node_id != here]
    victim = max(candidates, key=lambda w: nodes.count(w.node_id))
    assert nodes.count(victim.node_id) >= 1
    ray_cluster.cluster.remove_node(victim)
    answered = 0
    while ingest.is_alive():  # searches keep answering while the shard is repaired
        assert _search_ids(collection, xq[:5]).shape == (5, K)
        answered += 1
    ingest.join()
    assert answered >= 1
    assert sorted(ingest.acked) == list(range(N))
    assert ingest.refusals == 0  # writes wait for the replacement replica, none is refused

    # repaired: two ready replicas per shard, on distinct live nodes, none on the victim
    deadline = time.monotonic() + 180  # generous: a loaded 2-core host is slow to repair
    while time.monotonic() < deadline:
        shards = _topology(collection)
        if all(len(s) == 2 and all(r["ready"] for r in s) for s in shards):
            break
        time.sleep(0.5)
    for shard in shards:
        assert len(shard) == 2 and all(r["ready"] for r in shard)
        assert len({r["node"] for r in shard}) == 2
        assert victim.node_id not in {r["node"] for r in shard}

    # no acknowledged write lost, on every replica of every shard
    assert collection.count(None) == N
    for leader in collection.leaders:
        counts = ray.get([h.count.remote(None) for h in ray.get(leader.replicas.remote())])
        assert len(set(counts)) == 1
    seen: list[int] = []
    points, cursor = collection.scroll(None, -1, 1000, False, False)
    seen += [p.id for p in points]
    while cursor is not None:
        points, cursor = collection.scroll(None, cursor, 1000, False, False)
        seen += [p.id for p in points]
    assert sorted(seen) == list(range(N))

    # recall@10 against exact search, as for one node (float16 flat: near exact)
    assert recall(_search_ids(collection, xq), exact_ids(xq, xb)) >= 0.97
    # every replica answers the same (the replacement holds what the survivor held)
    for leader in collection.leaders:
        handles = ray.get(leader.replicas.remote())
        query = Query(collection.vectors(xq), K, with_payload=False)
        answers = [[[h.id for h in q] for q in ray.get(h.search.remote(query))] for h in handles]
        assert all(a == answers[0] for a in answers)


def _kill_the_only_replica(collection: str, shard: int) -> None:
    import ray

    from cluster.settings import NAMESPACE, leader_name

    leader = ray.get_actor(leader_name(collection, shard), namespace=NAMESPACE)
    (replica,) = ray.get(leader.replicas.remote())
    ray.kill(replica)


def _kill_everything(collection: str, shards: int) -> None:
    """kill -9 the metadata actor and every actor of the collection."""
    import ray

    from cluster.settings import META_NAME, NAMESPACE, leader_name

    names = [leader_name(collection, s) for s in range(shards)]
    leaders = [ray.get_actor(name, namespace=NAMESPACE) for name in names]
    replicas = [h for leader in leaders for h in ray.get(leader.replicas.remote())]
    for actor in [*replicas, *leaders, ray.get_actor(META_NAME, namespace=NAMESPACE)]:
        ray.kill(actor)


def _ready(client: Any) -> None:
    deadline = time.monotonic() + 180  # generous: a loaded 2-core host is slow to repair
    while client.get("/readyz").status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert client.get("/readyz").status_code == 200


def test_rest_api_over_the_cluster(
    ray_cluster: Any, service: ClusterService, data_dir: Path
) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings

    settings = Settings(  # type: ignore[call-arg]
        data=data_dir, cluster=ray_cluster.address, cluster_shards=2, cluster_replicas=1
    )
    with TestClient(create_app(settings)) as client:
        _ready(client)
        spec = {"dim": 4, "metric": "l2"}
        assert client.put("/collections/web", json=spec).status_code == 201
        assert client.put("/collections/web", json=spec).status_code == 200
        assert client.put("/collections/web", json={"dim": 5}).status_code == 409
        points = [{"id": i, "vector": [float(i), 0, 0, 0], "payload": {"i": i}} for i in range(20)]
        assert client.put("/collections/web/points", json={"points": points}).status_code == 200
        hits = client.post("/collections/web/search", json={"vector": [3.2, 0, 0, 0], "k": 3})
        assert [h["id"] for h in hits.json()["hits"]] == [3, 4, 2]
        assert client.post("/collections/web/points/count", json={}).json() == {"count": 20}
        assert client.get("/collections/web/points/7").json()["payload"] == {"i": 7}
        _kill_the_only_replica("web", shard=0)  # rebuilt from its own store: nothing lost
        deadline = time.monotonic() + 180  # generous: a loaded 2-core host is slow to repair
        while time.monotonic() < deadline:
            count = client.post("/collections/web/points/count", json={})
            if count.status_code == 200:
                break
            assert count.status_code == 503  # the shard is being rebuilt
            time.sleep(0.3)
        assert count.json() == {"count": 20}
        assert "web" in client.get("/collections").json()["collections"]
        bad = client.put("/collections/web/points", json={"points": [{"id": 1, "vector": [1]}]})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
        missing = client.get("/collections/web/points/999")
        assert missing.status_code == 404
        snap = client.post("/collections/web/snapshots")
        assert snap.status_code == 501 and snap.json()["error"]["code"] == "not_supported"

    # the whole cluster's actors die (kill -9); a new ingress finds the layouts on disk and
    # the restarted replicas reopen their own stores: every acknowledged write is there
    _kill_everything("web", shards=2)
    with TestClient(create_app(settings)) as client:
        _ready(client)
        assert client.post("/collections/web/points/count", json={}).json() == {"count": 20}
        hits = client.post("/collections/web/search", json={"vector": [3.2, 0, 0, 0], "k": 3})
        assert [h["id"] for h in hits.json()["hits"]] == [3, 4, 2]
        assert client.delete("/collections/web").status_code == 200
        assert client.get("/collections/web").status_code == 404
