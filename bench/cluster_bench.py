"""Cluster mode throughput: ingest and search with 1, 2 and 4 shards on one local Ray
instance (loopback only), printed as ratios to 1 shard measured in the same run.

    .venv/bin/python -m bench.cluster_bench --points 20000 --dim 64 --shards 1,2,4
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from cluster.service import ClusterService


@dataclass(frozen=True)
class Row:
    shards: int
    ingest_pts_s: float
    search_q_s: float
    recall_at_10: float


def unit_rows(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((64, dim)).astype(np.float32)
    x = (centres[rng.integers(0, 64, n)] + 0.5 * rng.standard_normal((n, dim))).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure(service: ClusterService, shards: int, args: argparse.Namespace) -> Row:
    from server.service.collection import Query
    from server.service.spec import CollectionSpec

    xb, xq = unit_rows(args.points, args.dim, 1), unit_rows(args.queries, args.dim, 2)
    name = f"bench-{shards}"
    spec = CollectionSpec.model_validate({"dim": args.dim, "metric": "ip"})
    collection, _ = service.create(name, spec, shards=shards, replicas=args.replicas)

    def upsert(start: int) -> None:
        ids = range(start, min(start + args.batch, args.points))
        vectors = collection.vectors(xb[start : start + len(ids)])
        collection.upsert([str(i) for i in ids], vectors, [None] * len(ids), True).result()

    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(upsert, range(0, args.points, args.batch)))
    ingest_s = time.perf_counter() - start

    def search(i: int) -> list[int]:
        hits = collection.search(Query(collection.vectors(xq[i : i + 1]), 10, with_payload=False))
        return [int(h.id) for h in hits[0]]

    search(0)  # warm: replica lists cached
    start = time.perf_counter()
    with ThreadPoolExecutor(args.clients) as pool:
        found = list(pool.map(search, range(args.queries)))
    search_s = time.perf_counter() - start
    truth = np.argsort(-(xq @ xb.T), axis=1)[:, :10]
    hit = sum(len(set(f) & set(t.tolist())) for f, t in zip(found, truth, strict=True))
    service.delete(name)
    return Row(shards, args.points / ingest_s, args.queries / search_s, hit / truth.size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--clients", type=int, default=4, help="concurrent client threads")
    parser.add_argument("--shards", default="1,2,4")
    parser.add_argument("--replicas", type=int, default=1)
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()

    import ray

    from cluster.service import ClusterService, shutdown_cluster
    from cluster.settings import NAMESPACE, ClusterConfig

    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        object_store_memory=200 * 2**20,
        _node_ip_address="127.0.0.1",
        namespace=NAMESPACE,
        logging_level=logging.WARNING,
    )
    try:
        with tempfile.TemporaryDirectory(prefix="pith-cluster-bench-") as root:
            service = ClusterService(ClusterConfig(root=root, replicas=args.replicas))
            service.open_all()
            rows = [measure(service, int(s), args) for s in args.shards.split(",")]
            shutdown_cluster()
    finally:
        ray.shutdown()
    base = rows[0]
    print(
        f"# {args.points} points x {args.dim}-d, batches of {args.batch}, {args.queries} "
        f"single-vector queries, {args.clients} client threads, {args.replicas} replica(s) "
        f"per shard, {os.cpu_count()} CPU cores, one machine"
    )
    print("| shards | ingest pts/s | x 1 shard | search q/s | x 1 shard | recall@10 |")
    print("|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r.shards} | {r.ingest_pts_s:,.0f} | {r.ingest_pts_s / base.ingest_pts_s:.2f} "
            f"| {r.search_q_s:,.0f} | {r.search_q_s / base.search_q_s:.2f} | {r.recall_at_10:.3f} |"
        )


if __name__ == "__main__":
    main()
