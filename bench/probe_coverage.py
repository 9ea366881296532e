"""How many codes the flagship's IVF must scan to reach the exact top-10, under fixed and
adaptive probing and with spilled (twice-listed) vectors (README, "flagship").

Coverage is the share of the exact top-10 (2,000 queries) lying in the lists a query probes:
what the scan can find at best, whatever the codes. Costs are codes scanned per query. Every
adaptive rule is swept over its parameters on the test queries themselves, so its rows are the
best it could do here; "saved" compares it with the fixed nprobe of equal coverage
(interpolated). Exact scores stand in for the re-ranked scores the rules would see.

    python -m bench.probe_coverage
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import faiss
import numpy as np

from bench.datasets.wordnet import wordnet_minilm
from index.ivf import coarse_centroids
from index.spec import IVFSpec

NLIST = 256
DEPTH = 3000  # exact neighbours kept per query, in score order
FIXED = (16, 24, 32, 48, 56, 64, 72, 80, 88, 96, 112, 128, 160, 192)


@dataclass(frozen=True)
class Probe:
    """Per query: list ranks of its exact top-DEPTH, and its lists' sizes in probing order."""

    ranks: np.ndarray  # (nq, DEPTH) rank of each neighbour's list, in score order
    sizes: np.ndarray  # (nq, NLIST) codes in the list probed at each rank
    list_rank: np.ndarray  # (nq, NLIST) the rank at which each list is probed

    def coverage(self, nprobe: np.ndarray) -> float:
        return float((self.ranks[:, :10] < nprobe[:, None]).mean())

    def codes(self, nprobe: np.ndarray) -> float:
        scanned = np.cumsum(self.sizes, axis=1)
        return float(scanned[np.arange(len(nprobe)), np.asarray(nprobe) - 1].mean())


def main() -> None:
    faiss.omp_set_num_threads(2)
    ds = wordnet_minilm()
    xb = np.ascontiguousarray(ds.xb, dtype=np.float32)
    xq = np.ascontiguousarray(ds.xq[:2000], dtype=np.float32)
    quantizer = faiss.IndexFlatIP(xb.shape[1])
    quantizer.add(
        coarse_centroids(xb, IVFSpec.model_validate({"nlist": NLIST, "by_residual": False}))
    )
    lists = quantizer.search(xb, 1)[1].ravel()
    flat = faiss.IndexFlatIP(xb.shape[1])
    flat.add(xb)
    top = flat.search(xq, DEPTH)[1]
    scores, order = quantizer.search(xq, NLIST)
    probe = probe_of(order, lists, top)
    curve = [(probe.coverage(np.full(len(xq), n)), probe.codes(np.full(len(xq), n))) for n in FIXED]
    print(f"{'probing':52s} {'coverage':>8s} {'codes/q':>8s} {'saved':>6s}")
    for n, (cov, codes) in zip(FIXED, curve, strict=True):
        print(f"{f'fixed nprobe {n}':52s} {cov:8.4f} {codes:8,.0f}")
    for name, nprobe in adaptive_rules(probe, scores):
        cov, codes = probe.coverage(nprobe), probe.codes(nprobe)
        print(f"{name:52s} {cov:8.4f} {codes:8,.0f} {saved(curve, cov, codes):6.0%}")
    for cov, codes in oracle(probe):
        print(f"{'oracle (each query its own nprobe)':52s} {cov:8.4f} {codes:8,.0f}")
    for name, cov, codes in spilled(xb, quantizer, lists, order, top, probe):
        print(f"{name:52s} {cov:8.4f} {codes:8,.0f} {saved(curve, cov, codes):6.0%}")


def probe_of(order: np.ndarray, lists: np.ndarray, top: np.ndarray) -> Probe:
    rank = np.empty_like(order)
    rows = np.arange(len(order))[:, None]
    rank[rows, order] = np.arange(order.shape[1])[None, :]
    sizes = np.bincount(lists, minlength=order.shape[1])[order]
    return Probe(rank[rows, lists[top]], sizes, rank)


def saved(curve: list[tuple[float, float]], cov: float, codes: float) -> float:
    """1 - codes / (codes a fixed nprobe needs for the same coverage)."""
    covs, costs = zip(*curve, strict=True)
    return 1.0 - codes / float(np.interp(cov, covs, costs))


def adaptive_rules(probe: Probe, scores: np.ndarray) -> Iterator[tuple[str, np.ndarray]]:
    """Per-query nprobe from the centroid scores, or from what the first lists found."""
    for tau in (0.2, 0.25, 0.3, 0.35):
        n = np.clip((scores >= scores[:, :1] - tau).sum(1), 16, NLIST)
        yield f"score margin {tau} (nprobe 16..256)", n
    for chunk, patience, watch in [(8, 3, 20), (16, 2, 20), (16, 3, 10), (16, 3, 20)]:
        rule = f"stop when {patience}x{chunk} lists leave the top-{watch} unchanged"
        yield rule, patience_stop(probe, chunk, patience, watch)
    for first, slope, extra in [(24, 3, 24), (24, 4, 24), (24, 3, 48), (32, 2, 48)]:
        rule = f"after {first} lists: {slope} x worst rank in top-20 + {extra}"
        yield rule, rank_rule(probe, first, slope, extra)


def found_ranks(probe: Probe, nprobe: int, watch: int) -> np.ndarray:
    """List ranks of the best `watch` neighbours within the first nprobe lists."""
    seen = probe.ranks < nprobe
    kept = seen & (np.cumsum(seen, axis=1) <= watch)
    return np.where(kept, probe.ranks, -1)


def patience_stop(probe: Probe, chunk: int, patience: int, watch: int) -> np.ndarray:
    """Probe chunk lists at a time; stop once `patience` chunks added nothing to the top."""
    steps = np.arange(8, NLIST + 1, chunk)
    last = np.stack([_watched_end(probe, int(n), watch) for n in steps], axis=1)
    stop = np.full(len(last), NLIST)
    for q, row in enumerate(last):
        same = np.flatnonzero(row[patience:] == row[:-patience])
        if len(same):
            stop[q] = steps[same[0] + patience]
    return stop


def _watched_end(probe: Probe, nprobe: int, watch: int) -> np.ndarray:
    """Position, in score order, of the watch-th neighbour within the first nprobe lists
    (it moves up exactly when more lists change the top-`watch`)."""
    seen = np.cumsum(probe.ranks < nprobe, axis=1)
    return (seen >= watch).argmax(1)


def rank_rule(probe: Probe, first: int, slope: float, extra: int) -> np.ndarray:
    worst = found_ranks(probe, first, 20).max(1)
    return np.clip(np.ceil(slope * worst + extra), first, NLIST).astype(int)


def oracle(probe: Probe) -> Iterator[tuple[float, float]]:
    """Fewest codes for a coverage, each query choosing how many of its top-10 to reach."""
    reach = np.sort(probe.ranks[:, :10], axis=1) + 1  # nprobe that reaches the j-th
    scanned = np.cumsum(probe.sizes, axis=1)
    cost = np.take_along_axis(scanned, reach - 1, axis=1)
    for target in (0.98, 0.99, 1.0):
        yield _lagrangian(cost, target)


def _lagrangian(cost: np.ndarray, target: float) -> tuple[float, float]:
    lo, hi = 0.0, 1.0
    for _ in range(50):
        lam = (lo + hi) / 2
        gain = np.arange(1, 11)[None, :] - lam * cost
        take = np.where(gain.max(1) > 0, gain.argmax(1) + 1, 0)
        if take.sum() / cost.size < target:
            hi = lam
        else:
            lo = lam
    gain = np.arange(1, 11)[None, :] - lo * cost
    take = np.where(gain.max(1) > 0, gain.argmax(1) + 1, 0)
    spent = np.where(take > 0, cost[np.arange(len(cost)), np.maximum(take - 1, 0)], 0)
    return take.sum() / cost.size, float(spent.mean())


def spilled(
    xb: np.ndarray,
    quantizer: faiss.IndexFlatIP,
    lists: np.ndarray,
    order: np.ndarray,
    top: np.ndarray,
    probe: Probe,
) -> Iterator[tuple[str, float, float]]:
    """Vectors listed a second time (SOAR's orthogonality-amplified residual, lambda 1), all
    of them (twice the codes and ids in RAM) or the 5 % that gain most (+2.8 B/vector)."""
    second, gain = soar_lists(xb, quantizer, lists)
    rows = np.arange(len(order))[:, None]
    second_rank = probe.list_rank[rows, second[top[:, :10]]]
    for share in (1.0, 0.05):
        chosen = gain >= np.quantile(gain, 1.0 - share)
        sizes = np.bincount(lists, minlength=NLIST) + np.bincount(second[chosen], minlength=NLIST)
        scanned = np.cumsum(sizes[order], axis=1)
        for n in (24, 32, 48, 64):
            hit = (probe.ranks[:, :10] < n) | ((second_rank < n) & chosen[top[:, :10]])
            label = f"spill {share:.0%} of vectors, nprobe {n}"
            yield label, float(hit.mean()), float(scanned[:, n - 1].mean())


def soar_lists(
    xb: np.ndarray, quantizer: faiss.IndexFlatIP, lists: np.ndarray, candidates: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """Second list per vector, minimising |r'|^2 + (<r, r'> / |r|)^2 over its nearest lists;
    and how much the vector is worth spilling (the primary residual's cost saved)."""
    centroids = quantizer.reconstruct_n(0, quantizer.ntotal)
    near = quantizer.search(xb, candidates + 1)[1][:, 1:]
    second = np.empty(len(xb), dtype=np.int64)
    gain = np.empty(len(xb))
    for start in range(0, len(xb), 8192):
        part = slice(start, start + 8192)
        r = xb[part] - centroids[lists[part]]
        r_norm = np.linalg.norm(r, axis=1)
        other = xb[part, None, :] - centroids[near[part]]
        along = np.einsum("nkd,nd->nk", other, r) / np.maximum(r_norm, 1e-12)[:, None]
        cost = (other**2).sum(2) + along**2
        best = cost.argmin(1)
        second[part] = near[part][np.arange(len(best)), best]
        gain[part] = r_norm**2 - cost[np.arange(len(best)), best]
    return second, gain


if __name__ == "__main__":
    main()
