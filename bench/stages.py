"""Where the flagship's time goes, stage by stage, with FAISS's own stage beside pith's.

pith's flagship scans its lists with FAISS's fast-scan kernel, as the baseline does; what it
does itself is the coarse stage (`kernels.coarse`: one matrix product and a partial sort
instead of FAISS's flat quantizer, which keeps a heap per query) and the re-rank
(`kernels.native`: candidates' float16 rows prefetched a few candidates ahead instead of
FAISS's IndexRefine, which waits on each row in turn). This builds the flagship
(`bench.single.flagship_specs`) and times each stage both ways on the same queries, one batch
of each in turn per round, one thread, and prints microseconds per query (median and range
over the rounds). FAISS's re-rank is not callable on its own: it is the difference, round by
round, between IndexRefine's search and its base index's search for the same candidates.

    python -m bench.stages [--rounds 15] [--limit N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np

from bench.datasets.wordnet import wordnet_minilm
from bench.harness import Context, K
from bench.pith_configs import trained_index
from bench.single import FLAGSHIP_OVERSAMPLE, context, flagship_specs
from index import SearchParams
from index.ivf import IVFIndex, search_lists
from kernels import native
from kernels.coarse import nearest_lists

Stage = tuple[str, Callable[[np.ndarray], object]]
FAISS_RERANK = "re-rank: FAISS IndexRefine (its search less its base's)"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=15)
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of N synsets")
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="pith-bench-stages-") as tmp:
        ctx = context(wordnet_minilm(limit=args.limit), 2000, 0, Path(tmp))
        print(report(run(ctx, args.rounds), len(ctx.xq), args.rounds))


def flagship_index(ctx: Context) -> IVFIndex:
    """The flagship, trained on and holding the context's vectors."""
    folder = Path(tempfile.mkdtemp(prefix="stages-flagship-", dir=ctx.workdir))
    index = trained_index(*flagship_specs(ctx.xb.shape[1]), ctx.xb, folder)
    assert isinstance(index, IVFIndex)
    return index


def stages(index: IVFIndex, xq: np.ndarray) -> list[Stage]:
    """Each stage of one search of xq at the index's nprobe, FAISS's way and pith's."""
    assert index.faiss is not None and index.vectors is not None and native.available()
    ivf, nprobe, n_cand = index.faiss, index.spec.nprobe, K * FLAGSHIP_OVERSAMPLE
    quantizer = faiss.downcast_index(ivf.quantizer)
    centroids, sq_norms = index._coarse_centroids()
    sp = index._base_params(SearchParams(nprobe=nprobe), None)
    refine_sp = index._refine_search_params(FLAGSHIP_OVERSAMPLE, SearchParams(nprobe=nprobe), None)
    refine, rows = index._refine_index(), index.vectors.vectors
    cand = index._cpu_search(xq, n_cand, sp)[1]
    dist, lists = nearest_lists(xq, centroids, sq_norms, nprobe, index.metric)

    return [
        ("coarse: FAISS flat quantizer", lambda q: quantizer.search(q, nprobe)),
        (
            "coarse: pith kernels.coarse",
            lambda q: nearest_lists(q, centroids, sq_norms, nprobe, index.metric),
        ),
        (
            f"scan: FAISS fast-scan of the chosen lists, top {n_cand}",
            lambda q: search_lists(ivf, q, n_cand, lists, dist, sp)[1],
        ),
        ("FAISS search, base index (coarse + scan)", lambda q: ivf.search(q, n_cand, params=sp)),
        (
            "FAISS search, IndexRefine (coarse + scan + re-rank)",
            lambda q: refine.search(q, K, params=refine_sp),
        ),
        (
            "re-rank: pith kernels.native",
            lambda q: native.rerank_f16(q, cand, cand, rows, K, index.metric),
        ),
        ("pith search, end to end", lambda q: index.search(q, K)),
    ]


def run(ctx: Context, rounds: int) -> dict[str, list[float]]:
    """Microseconds per query of every stage in every round (one thread), plus FAISS's
    re-rank as the per-round difference of its two searches."""
    index = flagship_index(ctx)
    xq = np.ascontiguousarray(index.encoder.query_view(ctx.xq), dtype=np.float32)
    timed = stages(index, xq)
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        for _, fn in timed:
            fn(xq)  # warm-up
        us: dict[str, list[float]] = {name: [] for name, _ in timed}
        for _ in range(rounds):
            for name, fn in timed:
                t0 = time.perf_counter()
                fn(xq)
                us[name].append((time.perf_counter() - t0) / len(xq) * 1e6)
    finally:
        faiss.omp_set_num_threads(threads)
    base, refine = us[timed[3][0]], us[timed[4][0]]
    us[FAISS_RERANK] = [r - b for r, b in zip(refine, base, strict=True)]
    return us


def report(us: dict[str, list[float]], n_queries: int, rounds: int) -> str:
    lines = [
        f"{n_queries:,} queries, one thread, {rounds} interleaved rounds; µs per query",
        f"{'stage':62s} {'median':>8s}  range",
    ]
    for name, values in us.items():
        lines.append(
            f"{name:62s} {statistics.median(values):8.1f}  {min(values):.1f}-{max(values):.1f}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
