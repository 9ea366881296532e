"""Import throughput: `pith import` and the SDK's upload against raw httpx posting of the
same base64 batches, measured in one run on one server (a fresh subprocess on a temporary
data folder unless --url is given). Prints a table of vectors/s and ratios to raw httpx.

    .venv/bin/python clients/python/bench_import.py            # wordnet-minilm, 117,659 x 384
    .venv/bin/python clients/python/bench_import.py --limit 20000 --npy my.npy
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson
import pybase64

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "clients" / "python")]

from pith_client import Client  # noqa: E402


def wordnet_vectors() -> np.ndarray:
    from bench.datasets.wordnet import wordnet_minilm

    return np.asarray(wordnet_minilm().xb, dtype=np.float32)


@contextlib.contextmanager
def server(data: Path, threads: int) -> Iterator[str]:
    """A `python -m server serve` subprocess on a free port; yields its URL."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PITH_CPU_THREADS": str(threads), "PITH_LOG_LEVEL": "warning"}
    cmd = [sys.executable, "-m", "server", "serve", "--data", str(data), "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        Client(url, retries=0).wait_ready(120)
        yield url
    finally:
        proc.terminate()
        proc.wait(60)


def raw_httpx(url: str, name: str, x: np.ndarray, batch_size: int) -> None:
    """The baseline: a bare loop of httpx PUTs with the same columnar base64 bodies."""
    with httpx.Client(base_url=url, timeout=300) as http:
        for start in range(0, len(x), batch_size):
            part = np.ascontiguousarray(x[start : start + batch_size], dtype="<f4")
            body = {
                "ids": list(range(start, start + len(part))),
                "vectors_b64": pybase64.b64encode(part.tobytes()).decode(),
                "dtype": "float32",
                "shape": list(part.shape),
            }
            response = http.put(
                f"/collections/{name}/points",
                content=orjson.dumps(body),
                headers={"content-type": "application/json"},
            )
            response.raise_for_status()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="an existing server (default: start one)")
    parser.add_argument("--npy", help="vectors to import (default: wordnet-minilm)")
    parser.add_argument("--limit", type=int, help="import only the first N vectors")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--parallel", type=int, default=2, help="SDK/CLI batches in flight")
    parser.add_argument("--threads", type=int, default=2, help="server CPU threads")
    parser.add_argument("--repeat", type=int, default=2, help="runs per method (best kept)")
    args = parser.parse_args()
    x = np.load(args.npy).astype(np.float32) if args.npy else wordnet_vectors()
    x = x[: args.limit] if args.limit else x
    with tempfile.TemporaryDirectory() as tmp:
        npy = Path(tmp) / "vectors.npy"
        np.save(npy, x)
        ctx = (
            contextlib.nullcontext(args.url) if args.url else server(Path(tmp) / "d", args.threads)
        )
        with ctx as url:
            run_all(url, x, npy, args)
    return 0


def run_all(url: str, x: np.ndarray, npy: Path, args: argparse.Namespace) -> None:
    client = Client(url)
    stamp = time.strftime("%H%M%S")
    bs, par = args.batch_size, args.parallel

    def cli(name: str) -> None:
        from server.cli import main as pith

        argv = ["import", name, str(npy), "--url", url, "--batch-size", str(bs)]
        assert pith([*argv, "--parallel", str(par), "--no-progress"]) == 0

    methods: list[tuple[str, Callable[[str], object]]] = [
        ("raw httpx, 1 in flight", lambda n: raw_httpx(url, n, x, bs)),
        (
            "SDK upload, parallel=1",
            lambda n: client.upload(n, None, x, batch_size=bs, progress=False),
        ),
        (
            f"SDK upload, parallel={par}",
            lambda n: client.upload(n, None, x, batch_size=bs, parallel=par, progress=False),
        ),
        (f"pith import (CLI), parallel={par}", cli),
    ]
    client.create_collection(f"warm{stamp}", dim=x.shape[1])  # first-request costs
    client.upload(f"warm{stamp}", None, x[:4096], batch_size=bs, progress=False)
    client.delete_collection(f"warm{stamp}")
    best: dict[str, float] = {}
    for r in range(args.repeat):  # interleaved, so load changes hit every method alike
        for i, (label, run) in enumerate(methods):
            name = f"imp{stamp}{r}{i}"
            if not label.startswith("pith import"):  # the CLI creates its own collection
                client.create_collection(name, dim=x.shape[1], metric="cosine")
            start = time.perf_counter()
            run(name)
            seconds = time.perf_counter() - start
            assert client.count(name) == len(x), label
            best[label] = min(best.get(label, float("inf")), seconds)
            client.delete_collection(name)
    rows = list(best.items())
    base = len(x) / rows[0][1]
    print(
        f"\n{len(x)} x {x.shape[1]} float32, batch {bs}, best of {args.repeat}, "
        f"server {url}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}"
    )
    print(f"{'method':<36} {'seconds':>8} {'vectors/s':>11} {'vs raw':>7}")
    for label, seconds in rows:
        rate = len(x) / seconds
        print(f"{label:<36} {seconds:>8.2f} {rate:>11,.0f} {rate / base:>7.2f}")


if __name__ == "__main__":
    sys.exit(main())
