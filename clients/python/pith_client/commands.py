"""The client side of the `pith` command (server/cli.py parses, this runs): import, search,
bench, snapshot, collections — over HTTP (--url, --api-key) or embedded (--path)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from pith_client.client import DEFAULT_URL, Client
from pith_client.errors import NotFound, PithError
from pith_client.files import read_points


def client_from(args: argparse.Namespace) -> Client:
    if args.path:
        return Client(path=args.path)
    url = args.url or os.environ.get("PITH_URL") or DEFAULT_URL
    return Client(url, api_key=args.api_key or os.environ.get("PITH_API_KEY"))


def run(args: argparse.Namespace) -> int:
    """Run a client subcommand; pith errors are printed as `code: message`, exit status 1."""
    commands = {
        "import": import_file,
        "search": search,
        "bench": bench,
        "snapshot": snapshot,
        "collections": collections,
    }
    try:
        with client_from(args) as client:
            return commands[args.command](client, args)
    except PithError as exc:
        print(f"pith: {exc.code}: {exc.message}", file=sys.stderr)
        return 1


def import_file(client: Client, args: argparse.Namespace) -> int:
    """Upload a file's points (creating the collection from the file's dimension if needed)."""
    points = read_points(Path(args.file), args.vector_column, args.id_column)
    try:
        client.get_collection(args.collection)
    except NotFound:
        spec = {"dim": points.dim, "metric": args.metric, "multivector": points.multivector}
        client.create_collection(args.collection, spec)
    start = time.perf_counter()
    count = client.upload(
        args.collection,
        points.ids,
        points.vectors,
        points.payloads,
        batch_size=args.batch_size,
        parallel=args.parallel,
        progress=None if args.progress is None else args.progress,
    )
    seconds = time.perf_counter() - start
    rate = count / seconds if seconds > 0 else float("inf")
    print(
        f"imported {count} points into {args.collection} in {seconds:.2f} s ({rate:,.0f} vectors/s)"
    )
    return 0


def _query(args: argparse.Namespace) -> Any:
    if args.vector is not None:
        return np.asarray([float(v) for v in args.vector.split(",")], dtype=np.float32)
    if args.npy is not None:
        return np.asarray(np.load(args.npy, mmap_mode="r")[args.row], dtype=np.float32)
    return None


def search(client: Client, args: argparse.Namespace) -> int:
    """Print the hits as JSON lines: {"id", "score", "payload"}."""
    flt = json.loads(args.filter) if args.filter else None
    hits = client.search(args.collection, _query(args), text=args.text, k=args.k, filter=flt)
    for hit in hits:
        print(json.dumps({"id": hit.id, "score": hit.score, "payload": hit.payload}))
    return 0


def bench(client: Client, args: argparse.Namespace) -> int:
    """Search throughput and latency with `concurrency` threads of seeded random queries."""
    dim = int(client.get_collection(args.collection).spec["dim"])
    queries = np.random.default_rng(args.seed).standard_normal((args.queries, dim))
    queries = queries.astype(np.float32)

    def one(q: np.ndarray) -> float:
        start = time.perf_counter()
        client.search(args.collection, q, k=args.k, with_payload=False)
        return time.perf_counter() - start

    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        latencies = np.asarray(list(pool.map(one, queries)))
    wall = time.perf_counter() - start
    p50, p99 = np.percentile(latencies * 1000, [50, 99])
    print(f"queries      {args.queries}")
    print(f"concurrency  {args.concurrency}")
    print(f"qps          {args.queries / wall:,.0f}")
    print(f"p50_ms       {p50:.2f}")
    print(f"p99_ms       {p99:.2f}")
    return 0


def snapshot(client: Client, args: argparse.Namespace) -> int:
    if args.action == "create":
        made = client.create_snapshot(args.collection)
        print(f"{made.name} {made.size_bytes} bytes")
    elif args.action == "list":
        for s in client.list_snapshots(args.collection):
            print(f"{s.name} {s.size_bytes} bytes")
    elif args.file:
        info = client.upload_snapshot(args.collection, args.file)
        print(f"restored {info.name}: {info.points} points")
    elif args.snapshot:
        info = client.restore_snapshot(args.collection, args.snapshot)
        print(f"restored {info.name}: {info.points} points")
    else:
        print("pith: snapshot restore needs SNAPSHOT or --file", file=sys.stderr)
        return 2
    return 0


def collections(client: Client, args: argparse.Namespace) -> int:
    """One line per collection: name, points, dim, metric, training state."""
    for name in client.list_collections():
        info = client.get_collection(name)
        spec = info.spec
        print(
            f"{name}\t{info.points} points\tdim {spec['dim']}\t{spec['metric']}"
            f"\t{info.training['state']}"
        )
    return 0
