"""Headless locust run of the mixed workload (95% search, 5% upsert) against a fresh server:
prints requests per second, p50/p95/p99 latency and the error count per request kind; with
--soak it samples the server's RSS and fails when it keeps growing.

    python -m loadtests.mixed --duration-s 30 --users 16
    python -m loadtests.mixed --duration-s 600 --users 16 --soak
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import gevent
import locust  # noqa: F401  (first: locust monkey-patches the standard library for gevent)
from locust import events
from locust.env import Environment

from loadtests import locustfile
from loadtests.harness import ServerProcess
from loadtests.locustfile import SearchAndUpsert, prepare

MIB = 2**20


def table(env: Environment, wall_s: float) -> int:
    """Print one row per request kind and the total; returns the error count."""
    head = ["request", "count", "errors", "rps", "p50 ms", "p95 ms", "p99 ms"]
    print(f"{head[0]:<10}" + "".join(f"{h:>9}" for h in head[1:]))
    rows = [*sorted(env.stats.entries.values(), key=lambda e: e.name), env.stats.total]
    for e in rows:
        pct = [e.get_response_time_percentile(q) for q in (0.5, 0.95, 0.99)]
        cells = [e.num_requests, e.num_failures, f"{e.num_requests / wall_s:.1f}"]
        cells += [f"{p:.1f}" for p in pct]
        print(f"{e.name:<10}" + "".join(f"{c:>9}" for c in cells))
    for error in env.stats.errors.values():
        print(f"  error x{error.occurrences}: {error.method} {error.name}: {error.error}")
    return int(env.stats.total.num_failures)


def rss_growth(samples: list[int]) -> float:
    """Relative growth of the median RSS from the second third of the run to the last."""
    third = max(1, len(samples) // 3)
    middle = sorted(samples[third : 2 * third])[len(samples[third : 2 * third]) // 2]
    last = sorted(samples[2 * third :])[len(samples[2 * third :]) // 2]
    return (last - middle) / middle


def run(args: argparse.Namespace) -> int:
    if args.soak:  # upserts replace points: memory that keeps growing is then a leak
        os.environ["PITH_LOAD_BOUNDED"] = "1"
    locustfile.PRELOAD = args.points
    with tempfile.TemporaryDirectory(prefix="pith-load-") as tmp:
        server = ServerProcess(Path(tmp) / "data", {"PITH_CPU_THREADS": str(args.cpu_threads)})
        server.start()
        try:
            prepare(server.url, args.points)
            env = Environment(user_classes=[SearchAndUpsert], host=server.url, events=events)
            runner = env.create_local_runner()
            runner.start(args.users, spawn_rate=args.users)
            t0, samples = time.perf_counter(), []
            while time.perf_counter() - t0 < args.duration_s:
                gevent.sleep(min(1.0, args.duration_s / 30))
                samples.append(server.rss_bytes())
            runner.quit()
            wall_s = time.perf_counter() - t0
        finally:
            server.stop()
    print(f"mixed workload: {args.users} users, {wall_s:.0f} s, {args.points} preloaded points")
    errors = table(env, wall_s)
    growth = rss_growth(samples)
    print(
        f"server RSS: start {samples[0] / MIB:.0f} MiB, peak {max(samples) / MIB:.0f} MiB, "
        f"end {samples[-1] / MIB:.0f} MiB, growth over the last third {100 * growth:+.1f}%"
    )
    if errors:
        print(f"FAIL: {errors} errors")
        return 1
    if args.soak and growth > args.max_growth:
        print(f"FAIL: RSS grew {100 * growth:.1f}% (limit {100 * args.max_growth:.0f}%)")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--points", type=int, default=20_000)
    parser.add_argument("--cpu-threads", type=int, default=2)
    parser.add_argument("--soak", action="store_true", help="fail when RSS keeps growing")
    parser.add_argument("--max-growth", type=float, default=0.10)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
