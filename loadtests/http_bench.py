"""HTTP benchmark of the pith server on wordnet-minilm, against the library in-process.

    python -m loadtests.http_bench                      # 117,659 x 384, flagship config
    python -m loadtests.http_bench --limit 20000 --duration 5 --train-sample 8192

Steps, one run, one server subprocess: ingest everything into an untrained collection
(exact float16 stage) through PUT /points (wait=true, batches of 1,000, base64 float16, and
JSON lists for reference); train (POST /train?wait=true); search over HTTP with 16
concurrent keep-alive connections (query bodies as JSON lists, then as base64 as the SDK
sends them) vs the same index loaded in-process and searched by 16 threads (single
queries); restart (graceful and kill -9) to ready, RSS; finally ingest as many new points
into the trained collection. Prints a table; gates nothing.
"""

from __future__ import annotations

import os

# the same native thread settings as `pith serve` (set before numpy loads), so the in-process
# baseline and the server run the library alike
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import base64
import json
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np

from loadtests.harness import Connection, ServerProcess, closed_loop, json_body

# the flagship of bench/single.py: IVF256 (spherical centroids) over 4-bit PQ codes of the
# vectors themselves, nprobe 72, re-rank 100 from disk
FLAGSHIP_ENCODER = {"kind": "pq", "m": 96, "nbits": 4, "opq": False, "anisotropic_eta": 1.0}
FLAGSHIP_INDEX = {
    "kind": "ivf",
    "nlist": 256,
    "nprobe": 72,
    "by_residual": False,
    "rerank": {"enabled": True, "oversample": 10},
}
NAME = "wordnet"


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--limit", type=int, default=None, help="documents (default: all 117,659)")
    p.add_argument("--encoder", type=json.loads, default=FLAGSHIP_ENCODER)
    p.add_argument("--index", type=json.loads, default=FLAGSHIP_INDEX)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=20.0, help="seconds per search measurement")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--batch", type=int, default=1000)
    p.add_argument("--ingest-clients", type=int, default=8)
    p.add_argument("--train-sample", type=int, default=32_768, help="server PITH_TRAIN_SAMPLE")
    p.add_argument("--data", type=Path, default=None, help="data folder (default: a temp one)")
    return p.parse_args()


def b64_batches(xb: np.ndarray, first_id: int, batch: int) -> list[bytes]:
    out = []
    for s in range(0, len(xb), batch):
        part = xb[s : s + batch].astype("<f2")
        out.append(
            json_body(
                {
                    "ids": list(range(first_id + s, first_id + s + len(part))),
                    "vectors_b64": base64.b64encode(part.tobytes()).decode(),
                    "dtype": "float16",
                    "shape": list(part.shape),
                }
            )
        )
    return out


def json_batches(xb: np.ndarray, first_id: int, batch: int) -> list[bytes]:
    return [
        json_body(
            {
                "points": [
                    {"id": first_id + s + i, "vector": v}
                    for i, v in enumerate(xb[s : s + batch].tolist())
                ]
            }
        )
        for s in range(0, len(xb), batch)
    ]


async def _ingest(port: int, path: str, bodies: list[bytes], clients: int) -> None:
    queue = list(reversed(bodies))

    async def worker() -> None:
        conn = Connection("127.0.0.1", port)
        await conn.open()
        while queue:
            status, payload = await conn.request("PUT", path, queue.pop())
            if status != 200:
                raise RuntimeError(f"upsert failed: {status} {payload[:200]!r}")
        await conn.close()

    await asyncio.gather(*(worker() for _ in range(clients)))


def ingest(server: ServerProcess, name: str, bodies: list[bytes], n: int, clients: int) -> float:
    """Vectors per second through PUT /points?wait=true."""
    t0 = time.perf_counter()
    asyncio.run(_ingest(server.port, f"/collections/{name}/points?wait=true", bodies, clients))
    return n / (time.perf_counter() - t0)


def search_bodies(xq: np.ndarray, k: int, wire: str) -> list[bytes]:
    """Query bodies as JSON float lists ("json", what curl users send) or as base64 float32
    ("b64", what pith_client sends: calls.query_body)."""
    if wire == "json":
        return [json_body({"vector": q, "k": k, "with_payload": False}) for q in xq.tolist()]
    return [
        json_body(
            {
                "vector_b64": base64.b64encode(q.astype("<f4").tobytes()).decode(),
                "dtype": "float32",
                "k": k,
                "with_payload": False,
            }
        )
        for q in xq
    ]


def http_search(
    server: ServerProcess, xq: np.ndarray, args: argparse.Namespace, wire: str = "json"
) -> dict[str, float]:
    bodies = search_bodies(xq, args.k, wire)
    path = f"/collections/{NAME}/search"
    asyncio.run(closed_loop(server.port, path, bodies, args.concurrency, 2.0))  # warm-up
    cpu0 = server.cpu_seconds()
    done, lat = asyncio.run(closed_loop(server.port, path, bodies, args.concurrency, args.duration))
    cpu_s = server.cpu_seconds() - cpu0
    ms = np.array(lat) * 1e3
    return {
        "qps": done / args.duration,
        "cores": cpu_s / args.duration,
        "per_cpu_s": done / cpu_s,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def library_search(
    data: Path, xq: np.ndarray, args: argparse.Namespace, threads: int | None = None
) -> dict[str, float]:
    """The same index (the server's last checkpoint), searched in-process by `threads`
    threads (default: as many as HTTP connections)."""
    threads = threads or args.concurrency
    import faiss

    from index import SearchParams, load_index

    root = data / "collections" / NAME / "index"
    generation = json.loads((root / "checkpoint.json").read_text())["generation"]
    copy = Path(tempfile.mkdtemp(prefix="pith-bench-")) / "index"
    shutil.copytree(root / generation, copy)
    index = load_index(copy)
    counts, lat = [0] * threads, []
    stop_at = time.perf_counter() + args.duration

    def worker(w: int) -> None:
        faiss.omp_set_num_threads(1)  # as the server's search threads
        i = w
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            index.search(xq[i % len(xq) : i % len(xq) + 1], args.k, SearchParams())
            lat.append(time.perf_counter() - t0)
            counts[w] += 1
            i += threads

    for _ in range(50):
        index.search(xq[:1], args.k)
    workers = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
    cpu0 = time.process_time()
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    cpu_s = time.process_time() - cpu0
    shutil.rmtree(copy.parent, ignore_errors=True)
    ms = np.array(lat) * 1e3
    qps = sum(counts) / args.duration
    return {
        "qps": qps,
        "cores": cpu_s / args.duration,
        "per_cpu_s": sum(counts) / cpu_s,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


def main() -> None:
    args = parse_args()
    from bench.datasets.wordnet import wordnet_minilm

    ds = wordnet_minilm()
    xb = ds.xb if args.limit is None else ds.xb[: args.limit]
    xq = ds.xq[:5000]
    n = len(xb)
    data = args.data or Path(tempfile.mkdtemp(prefix="pith-http-bench-"))
    server = ServerProcess(data, {"PITH_TRAIN_SAMPLE": str(args.train_sample)})
    rows: list[tuple[str, str, str]] = []
    try:
        server.start()
        http = httpx.Client(base_url=server.url, timeout=3600)
        spec = {
            "dim": 384,
            "metric": "cosine",
            "encoder": args.encoder,
            "index": args.index,
            "train_size": 10**9,
        }
        assert http.put(f"/collections/{NAME}", json=spec).status_code == 201
        rate = ingest(server, NAME, b64_batches(xb, 0, args.batch), n, args.ingest_clients)
        rows.append(
            (
                "ingest, untrained (b64 float16)",
                f"{rate:,.0f} vectors/s",
                f"{n:,} x 384, {args.ingest_clients} clients, target >= 20,000",
            )
        )
        probe = xb[: min(n, 20_000)]
        assert http.put("/collections/probe", json=spec).status_code == 201
        rate = ingest(
            server, "probe", json_batches(probe, 0, args.batch), len(probe), args.ingest_clients
        )
        rows.append(
            (
                "ingest, untrained (JSON lists)",
                f"{rate:,.0f} vectors/s",
                f"{len(probe):,} x 384, reference",
            )
        )
        http.delete("/collections/probe")
        t0 = time.perf_counter()
        assert http.post(f"/collections/{NAME}/train", params={"wait": True}).status_code == 200
        rows.append(
            (
                "train (background job)",
                f"{time.perf_counter() - t0:,.1f} s",
                f"sample {min(n, args.train_sample):,}",
            )
        )
        lib = library_search(data, xq, args)
        cores = os.cpu_count() or 1
        best = library_search(data, xq, args, threads=cores)
        web = http_search(server, xq, args)
        sdk = http_search(server, xq, args, wire="b64")
        rows.append(
            (
                "search, in-process library",
                f"{lib['qps']:,.0f} QPS",
                f"p50 {lib['p50_ms']:.2f} ms, p99 {lib['p99_ms']:.2f} ms, "
                f"{args.concurrency} threads, {lib['cores']:.2f} cores busy",
            )
        )
        rows.append(
            (
                "search, HTTP",
                f"{web['qps']:,.0f} QPS",
                f"p50 {web['p50_ms']:.2f} ms, p99 {web['p99_ms']:.2f} ms, "
                f"{args.concurrency} connections, {web['cores']:.2f} cores busy",
            )
        )
        rows.append(
            (
                "search, HTTP, base64 bodies (as pith_client sends)",
                f"{sdk['qps']:,.0f} QPS",
                f"p50 {sdk['p50_ms']:.2f} ms, p99 {sdk['p99_ms']:.2f} ms, "
                f"{sdk['cores']:.2f} cores busy",
            )
        )
        rows.append(
            (
                f"search, in-process library, {cores} threads",
                f"{best['qps']:,.0f} QPS",
                f"p50 {best['p50_ms']:.2f} ms, one thread per core, {best['cores']:.2f} cores busy",
            )
        )
        rows.append(("HTTP / in-process, QPS", f"{web['qps'] / lib['qps']:.0%}", "target >= 50%"))
        rows.append(
            (
                "HTTP (base64 bodies) / in-process, QPS",
                f"{sdk['qps'] / lib['qps']:.0%}",
                "the SDK's wire form",
            )
        )
        rows.append(
            (
                f"HTTP / in-process at {cores} threads, QPS",
                f"{web['qps'] / best['qps']:.0%}",
                "against the library's best thread count",
            )
        )
        ratio = web["per_cpu_s"] / lib["per_cpu_s"]
        rows.append(
            (
                "HTTP / in-process, per CPU-second",
                f"{ratio:.0%}",
                f"{web['per_cpu_s']:,.0f} vs {lib['per_cpu_s']:,.0f} queries per CPU-second "
                "(fair on a shared machine)",
            )
        )
        server.stop(signal.SIGTERM)
        ready_s = server.start()
        rows.append(
            (
                "restart to ready (graceful stop)",
                f"{ready_s:.1f} s",
                f"{n:,} points, collections opened in {server.load_s:.1f} s, target <= 10 s",
            )
        )
        asyncio.run(  # a few searches: the search processes start and open the collection
            closed_loop(
                server.port, f"/collections/{NAME}/search", search_bodies(xq, 10, "b64"), 4, 3.0
            )
        )
        rss, with_search = server.rss_bytes(), server.rss_bytes(children=True)
        rows.append(
            (
                "server RSS, loaded",
                f"{rss / 2**20:,.0f} MiB",
                f"{with_search / 2**20:,.0f} MiB with its "
                f"{len(server.pids()) - 1} search processes",
            )
        )
        server.stop(signal.SIGKILL)
        ready_s = server.start()
        rows.append(
            (
                "restart to ready (after kill -9)",
                f"{ready_s:.1f} s",
                f"collections opened (log replayed) in {server.load_s:.1f} s",
            )
        )
        http = httpx.Client(base_url=server.url, timeout=3600)
        rate = ingest(server, NAME, b64_batches(xb, n, args.batch), n, args.ingest_clients)
        rows.append(
            ("ingest, trained pq", f"{rate:,.0f} vectors/s", f"{n:,} more, target >= 10,000")
        )
    finally:
        server.stop(signal.SIGKILL)
        if args.data is None:
            shutil.rmtree(data, ignore_errors=True)
    print_table(rows)


def print_table(rows: list[tuple[str, str, str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
