"""Measuring one configuration: build, timed single-thread batch search, quality, bytes."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.metrics import ndcg_at_k, recall_at_k
from bench.report import Row

K = 10


@dataclass
class Built:
    """A built configuration: a batch search returning ids (nq, K) and its memory footprint."""

    search: Callable[[np.ndarray], np.ndarray]
    bytes_ram: float  # per vector
    bytes_disk: float = 0.0  # per vector
    note: str = ""


Builder = Callable[[np.ndarray, Path], Built]


@dataclass
class Context:
    """What every configuration of one dataset is measured against."""

    dataset: str
    xb: np.ndarray
    xq: np.ndarray
    qrels: np.ndarray
    truth: np.ndarray  # exact top-K ids per query
    workdir: Path
    repeats: int = 3


def timed_qps(
    search: Callable[[np.ndarray], np.ndarray], xq: np.ndarray, repeats: int
) -> tuple[float, np.ndarray]:
    """Queries per second of one batch call over all queries (best of `repeats`), and the ids."""
    search(xq[: min(len(xq), 32)])  # warm caches and lazy initialisation
    best = float("inf")
    ids = np.empty(0)
    for _ in range(repeats):
        t0 = time.perf_counter()
        ids = search(xq)
        best = min(best, time.perf_counter() - t0)
    return len(xq) / best, ids


def measure(ctx: Context, name: str, baseline: bool, builder: Builder) -> Row:
    """Build, search and score one configuration."""
    folder = ctx.workdir / name.replace(" ", "_").replace("/", "_")
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    built = builder(ctx.xb, folder)
    build_s = time.perf_counter() - t0
    qps, ids = timed_qps(built.search, ctx.xq, ctx.repeats)
    return Row(
        dataset=ctx.dataset,
        name=name,
        baseline=baseline,
        bytes_per_vector_ram=built.bytes_ram,
        bytes_per_vector_disk=built.bytes_disk,
        recall_at_10=recall_at_k(ids, ctx.truth, K),
        ndcg_at_10=ndcg_at_k(ids, ctx.qrels, K),
        qps=qps,
        build_s=build_s,
        note=built.note,
    )
