"""The flagship against FAISS's IVF512 baseline and HNSW32-Flat, timed in interleaved rounds.

`python -m bench` times each configuration on its own, minutes apart; on a shared machine the
load drifts in between (the same setting moved by up to 25 % between rounds here). This
builds the configurations once, then times one batch of each in turn, round after round,
and reports each one's QPS ratio to the baseline per round: batches seconds apart see the
same load, so the ratios hold still where the QPS do not. The flagship is pith's own index
(`bench.single.flagship_specs`), searched at its nprobe (which reaches the baseline's recall)
and at a second one (by default lower: faster, below the baseline's recall). 2,000 queries,
one thread, recall@10 against exact search.

    python -m bench.ab [--rounds 15] [--limit N] [--nprobe 72]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import faiss
import numpy as np

from bench.datasets.wordnet import wordnet_minilm
from bench.harness import Context, K
from bench.metrics import recall_at_k
from bench.pith_configs import trained_index
from bench.single import (
    FLAGSHIP_NPROBE,
    context,
    fast_scan_baseline,
    flagship,
    flagship_specs,
    hnsw_baseline,
)
from index import SearchParams

Search = Callable[[np.ndarray], np.ndarray]


@dataclass
class Timed:
    """One configuration: its batch search, recall@10 and the QPS of every round."""

    name: str
    search: Search
    recall: float = 0.0
    qps: list[float] = field(default_factory=list)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of N synsets")
    p.add_argument("--nprobe", type=int, default=72, help="the flagship's second nprobe")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pith-bench-ab-") as tmp:
        ctx = context(wordnet_minilm(limit=args.limit), 2000, 0, Path(tmp))
        timed = run(ctx, args.rounds, args.nprobe)
    print(report(timed, args.rounds))


def run(ctx: Context, rounds: int, nprobe: int) -> list[Timed]:
    """Build the configurations, score them, then time them in turn for `rounds` rounds."""
    return time_in_rounds(ctx, configurations(ctx, nprobe), rounds)


def time_in_rounds(ctx: Context, timed: list[Timed], rounds: int) -> list[Timed]:
    """Score each configuration's recall@10, then time one batch of each in turn, one
    thread, for `rounds` rounds."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # built on every core, timed on one
    try:
        for t in timed:
            ids = t.search(ctx.xq)  # warm-up, and the ids scored
            t.recall = recall_at_k(ids, ctx.truth, K)
        for _ in range(rounds):
            for t in timed:
                t0 = time.perf_counter()
                t.search(ctx.xq)
                t.qps.append(len(ctx.xq) / (time.perf_counter() - t0))
    finally:
        faiss.omp_set_num_threads(threads)
    return timed


def configurations(ctx: Context, nprobe: int) -> list[Timed]:
    """FAISS's baseline, HNSW32-Flat, and pith's flagship at two nprobe (built once)."""
    d = ctx.xb.shape[1]
    timed = []
    for name, _, builder in (fast_scan_baseline(d // 4), hnsw_baseline()):
        folder = ctx.workdir / name.split()[1].replace(",", "_")
        folder.mkdir()
        timed.append(Timed(name, builder(ctx.xb, folder).search))
    name, _, _ = flagship(d)
    (ctx.workdir / "flagship").mkdir()
    index = trained_index(*flagship_specs(d), ctx.xb, ctx.workdir / "flagship")
    wider = SearchParams(nprobe=nprobe)
    return [
        *timed,
        Timed(name, lambda q: index.search(q, K).ids),
        Timed(
            name.replace(f"nprobe{FLAGSHIP_NPROBE}", f"nprobe{nprobe}"),
            lambda q: index.search(q, K, wider).ids,
        ),
    ]


def report(timed: list[Timed], rounds: int) -> str:
    """Recall, median QPS, and the per-round QPS ratio to the baseline, the first of `timed`
    (median and range)."""
    base = timed[0]
    lines = [
        f"{rounds} interleaved rounds, one batch of each per round",
        f"{'configuration':70s} {'R@10':>6s} {'QPS (median)':>13s}  ratio to baseline",
    ]
    for t in timed:
        ratios = [q / b for q, b in zip(t.qps, base.qps, strict=True)]
        lo, mid, hi = min(ratios), statistics.median(ratios), max(ratios)
        lines.append(
            f"{t.name:70s} {t.recall:6.4f} {statistics.median(t.qps):13,.0f}"
            f"  {mid:.3f} ({lo:.3f}-{hi:.3f})"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
