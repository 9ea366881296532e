"""HTTP benchmark of the pith server on wordnet-minilm, against the library in-process.

    python -m loadtests.http_bench                      # 117,659 x 384, flagship config
    python -m loadtests.http_bench --limit 20000 --duration 5 --train-sample 8192

Steps, one run, one server subprocess: ingest everything into an untrained collection (exact
float16 stage) through PUT /points (wait=true, batches of 1,000, base64 float16, and JSON
lists for reference); train (POST /train?wait=true); search over HTTP with 16 concurrent
keep-alive connections (query bodies as JSON lists, then as base64 as the SDK sends them) vs
the same index loaded in-process and searched by 16 threads (single queries), in interleaved
rounds (`--rounds`; medians, and each round's ratio); restart (graceful and kill -9) to
ready, RSS; finally ingest as many new points into the trained collection. Prints a table;
gates nothing.
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

from loadtests.harness import Connection, ServerProcess, closed_loop, json_body, run_client

# the flagship of bench/single.py: IVF256 (spherical centroids) over 4-bit PQ codes of the
# vectors themselves, nprobe 80, re-rank 100 from disk
FLAGSHIP_ENCODER = {"kind": "pq", "m": 96, "nbits": 4, "opq": False, "anisotropic_eta": 1.0}
FLAGSHIP_INDEX = {
    "kind": "ivf",
    "nlist": 256,
    "nprobe": 80,
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
    p.add_argument(
        "--duration", type=float, default=20.0, help="seconds per search configuration, all rounds"
    )
    p.add_argument("--rounds", type=int, default=4, help="interleaved rounds of the searches")
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
    run_client(_ingest(server.port, f"/collections/{name}/points?wait=true", bodies, clients))
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
    server: ServerProcess, bodies: list[bytes], args: argparse.Namespace
) -> dict[str, float]:
    path = f"/collections/{NAME}/search"
    run_client(closed_loop(server.port, path, bodies, args.concurrency, 1.0))  # warm-up
    cpu0 = server.cpu_seconds()
    seconds = args.duration / args.rounds
    done, lat = run_client(closed_loop(server.port, path, bodies, args.concurrency, seconds))
    return measured(done, seconds, server.cpu_seconds() - cpu0, lat)


def measured(done: int, seconds: float, cpu_s: float, latencies: list[float]) -> dict[str, float]:
    """QPS, cores busy, queries per CPU-second, and latency percentiles of one measurement."""
    ms = np.array(latencies) * 1e3
    return {
        "qps": done / seconds,
        "cores": cpu_s / seconds,
        "per_cpu_s": done / cpu_s,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
    }


class Library:
    """The same index (the server's last checkpoint), loaded in-process from a copy."""

    def __init__(self, data: Path) -> None:
        from index import load_index

        root = data / "collections" / NAME / "index"
        generation = json.loads((root / "checkpoint.json").read_text())["generation"]
        self.copy = Path(tempfile.mkdtemp(prefix="pith-bench-")) / "index"
        shutil.copytree(root / generation, self.copy)
        self.index = load_index(self.copy)

    def close(self) -> None:
        shutil.rmtree(self.copy.parent, ignore_errors=True)

    def search(self, xq: np.ndarray, args: argparse.Namespace, threads: int) -> dict[str, float]:
        """`threads` threads, each searching one query at a time."""
        import faiss

        from index import SearchParams

        index, seconds = self.index, args.duration / args.rounds
        counts, lat = [0] * threads, []
        for _ in range(50):
            index.search(xq[:1], args.k)
        stop_at = time.perf_counter() + seconds

        def worker(w: int) -> None:
            faiss.omp_set_num_threads(1)  # as the server's search threads
            i = w
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                index.search(xq[i % len(xq) : i % len(xq) + 1], args.k, SearchParams())
                lat.append(time.perf_counter() - t0)
                counts[w] += 1
                i += threads

        workers = [threading.Thread(target=worker, args=(w,)) for w in range(threads)]
        cpu0 = time.process_time()
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        return measured(sum(counts), seconds, time.process_time() - cpu0, lat)


Measures = dict[str, list[dict[str, float]]]


def search_rounds(
    server: ServerProcess, data: Path, xq: np.ndarray, args: argparse.Namespace
) -> Measures:
    """`args.rounds` rounds, each measuring the library (as many threads as connections, then
    one per core), HTTP with JSON bodies and HTTP with base64 bodies one after the other, so
    that a change in the load of the shared machine falls on all four alike."""
    lib = Library(data)
    bodies = {wire: search_bodies(xq, args.k, wire) for wire in ("json", "b64")}
    out: Measures = {"lib": [], "best": [], "json": [], "b64": []}
    try:
        for _ in range(args.rounds):
            out["lib"].append(lib.search(xq, args, args.concurrency))
            out["best"].append(lib.search(xq, args, os.cpu_count() or 1))
            out["json"].append(http_search(server, bodies["json"], args))
            out["b64"].append(http_search(server, bodies["b64"], args))
    finally:
        lib.close()
    return out


def median(runs: list[dict[str, float]], key: str) -> float:
    return float(np.median([r[key] for r in runs]))


def ratios(top: list[dict[str, float]], bottom: list[dict[str, float]], key: str) -> str:
    """The median over rounds of top/bottom, with each round's ratio."""
    each = [t[key] / b[key] for t, b in zip(top, bottom, strict=True)]
    return f"{np.median(each):.0%}", "rounds: " + ", ".join(f"{r:.0%}" for r in each)


def search_rows(m: Measures, args: argparse.Namespace) -> list[tuple[str, str, str]]:
    cores = os.cpu_count() or 1
    lib, best, web, sdk = m["lib"], m["best"], m["json"], m["b64"]

    def latency(runs: list[dict[str, float]]) -> str:
        return f"p50 {median(runs, 'p50_ms'):.2f} ms, p99 {median(runs, 'p99_ms'):.2f} ms"

    rows = [
        (
            "search, in-process library",
            f"{median(lib, 'qps'):,.0f} QPS",
            f"{latency(lib)}, {args.concurrency} threads, {median(lib, 'cores'):.2f} cores busy",
        ),
        (
            "search, HTTP",
            f"{median(web, 'qps'):,.0f} QPS",
            f"{latency(web)}, {args.concurrency} connections, "
            f"{median(web, 'cores'):.2f} cores busy",
        ),
        (
            "search, HTTP, base64 bodies (as pith_client sends)",
            f"{median(sdk, 'qps'):,.0f} QPS",
            f"{latency(sdk)}, {median(sdk, 'cores'):.2f} cores busy",
        ),
        (
            f"search, in-process library, {cores} threads",
            f"{median(best, 'qps'):,.0f} QPS",
            f"{latency(best)}, one thread per core, {median(best, 'cores'):.2f} cores busy",
        ),
    ]
    value, each = ratios(web, lib, "qps")
    rows.append(("HTTP / in-process, QPS", value, f"target >= 50%; {each}"))
    value, each = ratios(sdk, lib, "qps")
    rows.append(("HTTP (base64 bodies) / in-process, QPS", value, f"the SDK's wire form; {each}"))
    value, each = ratios(web, best, "qps")
    rows.append((f"HTTP / in-process at {cores} threads, QPS", value, each))
    value, each = ratios(web, lib, "per_cpu_s")
    rows.append(
        (
            "HTTP / in-process, per CPU-second",
            value,
            f"{median(web, 'per_cpu_s'):,.0f} vs {median(lib, 'per_cpu_s'):,.0f} queries per "
            f"CPU-second (fair on a shared machine); {each}",
        )
    )
    return rows


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
        rows += search_rows(search_rounds(server, data, xq, args), args)
        server.stop(signal.SIGTERM)
        ready_s = server.start()
        rows.append(
            (
                "restart to ready (graceful stop)",
                f"{ready_s:.1f} s",
                f"{n:,} points, collections opened in {server.load_s:.1f} s, target <= 10 s",
            )
        )
        run_client(  # a few searches: the search processes start and open the collection
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
