"""Finer lists for the flagship: each of IVF256's lists cut into balanced blocks of 32
vectors (one fast-scan block), and what choosing the blocks costs (README, "Where the time
could still come from").

A query that probes blocks rather than whole lists reaches the same share of its exact top-10
with about half the codes (the coverage table). FAISS scans such lists well with its
one-query-at-a-time loop (`implem` 11), so the scan alone, with each query's blocks picked
beforehand and not timed, is well ahead of FAISS's own scan. The question is the coarse stage
that picks a query's few hundred blocks among thousands, as a FAISS quantizer under the same
scan and IndexRefine re-rank: an exact flat index of the block centroids (float32, over the
64 B budget), or FAISS's fast-scan over the block centroids coded as 4-bit residuals of their
list. All are timed in interleaved rounds against FAISS's IVF512 baseline, end to end and scan
alone (`bench.ab.time_in_rounds`): 2,000 queries, one thread, re-rank of 100 from a float16
file.

    python -m bench.fine_lists [--rounds 8] [--limit N]
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import faiss
import numpy as np

from bench.ab import Search, Timed, report, time_in_rounds
from bench.baselines import float16_file
from bench.datasets.wordnet import wordnet_minilm
from bench.flagship_variants import refined
from bench.harness import Context, K
from bench.probe_coverage import probe_of
from bench.single import context, fast_scan_baseline
from index.codecs import add_to_lists, install_codebooks, vector_bytes
from index.ivf import coarse_centroids, ivf_bytes
from index.spec import IVFSpec

IP = faiss.METRIC_INNER_PRODUCT
CAP = 32  # vectors per block: one fast-scan block of FAISS
RERANK = 100
PQ_TRAIN = 65_536


@dataclass(frozen=True)
class Blocks:
    """Balanced blocks cut from the lists of a spherical k-means IVF."""

    parents: np.ndarray  # (nlist, d) the lists' unit centroids
    centroids: np.ndarray  # (nb, d) each block's unit mean direction
    block_of: np.ndarray  # (n,) the block of each vector
    parent_of: np.ndarray  # (nb,) the list each block was cut from


def cut_blocks(xb: np.ndarray, nlist: int, cap: int = CAP, seed: int = 0) -> Blocks:
    """Cut each list into ceil(size / cap) blocks of at most cap vectors (balanced k-means)."""
    spec = IVFSpec.model_validate({"nlist": nlist, "by_residual": False, "seed": seed})
    parents = coarse_centroids(xb, spec)
    lists = nearest(parents, xb)
    block_of = np.empty(len(xb), dtype=np.int64)
    centroids: list[np.ndarray] = []
    parent_of: list[int] = []
    for list_no in range(nlist):
        members = np.flatnonzero(lists == list_no)
        if not len(members):
            continue
        local, cents = balanced_split(xb[members], cap, seed)
        block_of[members] = local + len(parent_of)
        centroids.append(cents)
        parent_of.extend([list_no] * len(cents))
    return Blocks(parents, np.concatenate(centroids), block_of, np.asarray(parent_of))


def nearest(centroids: np.ndarray, x: np.ndarray) -> np.ndarray:
    quantizer = faiss.IndexFlatIP(centroids.shape[1])
    quantizer.add(np.ascontiguousarray(centroids, dtype=np.float32))
    return quantizer.search(np.ascontiguousarray(x, dtype=np.float32), 1)[1].ravel()


def balanced_split(
    x: np.ndarray, cap: int, seed: int, iterations: int = 10
) -> tuple[np.ndarray, np.ndarray]:
    """Spherical k-means into ceil(n / cap) clusters of at most cap points each."""
    k = -(-len(x) // cap)
    rng = np.random.default_rng(seed)
    centroids = x[rng.choice(len(x), size=k, replace=False)]
    assign = np.zeros(len(x), dtype=np.int64)
    for _ in range(iterations if k > 1 else 1):
        if k > 1:
            assign = greedy_capacity(x @ centroids.T, cap)
        sums = np.zeros((k, x.shape[1]))
        np.add.at(sums, assign, x)
        centroids = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return assign, centroids.astype(np.float32)


def greedy_capacity(scores: np.ndarray, cap: int) -> np.ndarray:
    """Each row to a column, best (row, column) score first, no column over cap rows."""
    n, k = scores.shape
    assign, load, left = [-1] * n, [0] * k, n
    rows, cols = np.divmod(np.argsort(-scores, axis=None), k)
    for i, j in zip(rows.tolist(), cols.tolist(), strict=True):
        if assign[i] < 0 and load[j] < cap:
            assign[i], load[j], left = j, load[j] + 1, left - 1
            if not left:
                break
    return np.asarray(assign, dtype=np.int64)


def fast_scan_ivf(
    quantizer: faiss.Index, nlist: int, books: np.ndarray, by_residual: bool
) -> faiss.IndexIVF:
    """An empty, trained IVF fast-scan over `books` (4-bit); the caller keeps `quantizer`."""
    d = quantizer.d
    ivf = faiss.IndexIVFPQFastScan(quantizer, d, nlist, books.shape[0], 4, IP, CAP)
    install_codebooks(ivf.pq, books)
    ivf.by_residual = by_residual
    ivf.is_trained = True
    return ivf


def pq_books(x: np.ndarray, m: int, seed: int) -> faiss.ProductQuantizer:
    """A 4-bit PQ trained on a seeded sample of x."""
    rng = np.random.default_rng(seed)
    sample = x[rng.choice(len(x), size=min(PQ_TRAIN, len(x)), replace=False)]
    pq = faiss.ProductQuantizer(x.shape[1], m, 4)
    pq.train(np.ascontiguousarray(sample, dtype=np.float32))
    return pq


def books_of(pq: faiss.ProductQuantizer) -> np.ndarray:
    return faiss.vector_to_array(pq.centroids).reshape(pq.M, pq.ksub, pq.dsub)


class BlockIndex:
    """4-bit PQ fast-scan codes of the vectors, one FAISS inverted list per block, whose
    blocks a coarse stage picks, re-ranked by FAISS's IndexRefine from a float16 file."""

    def __init__(
        self,
        xb: np.ndarray,
        blocks: Blocks,
        pq: faiss.ProductQuantizer,
        coarse: faiss.Index,
        refine: faiss.Index,
    ) -> None:
        self.coarse, self.refine_sq = coarse, refine  # FAISS does not own them
        self.ivf = fast_scan_ivf(coarse, len(blocks.centroids), books_of(pq), False)
        self.ivf.implem = 11  # one query at a time: the least work per list of one block
        add_to_lists(self.ivf, blocks.block_of, np.arange(len(xb)), pq.compute_codes(xb))
        self.refined = refined(self.ivf, refine, RERANK)

    def search(self, xq: np.ndarray, n: int) -> np.ndarray:
        """Top-10 after the coarse stage's n blocks and a re-rank of 100."""
        self.ivf.nprobe = n
        return self.refined.search(xq, K)[1]

    def scan(self, xq: np.ndarray, scores: np.ndarray, picked: np.ndarray) -> np.ndarray:
        """The top-10 by 4-bit codes in the given blocks, collecting 100 (no re-rank)."""
        self.ivf.nprobe = picked.shape[1]
        return self.ivf.search_preassigned(xq, RERANK, picked, scores)[1][:, :K]

    def list_bytes(self) -> int:
        """Codes with block padding, ids and codebooks: the lists without their coarse stage."""
        return ivf_bytes(self.ivf) - vector_bytes(faiss.downcast_index(self.coarse).codes)


def exact_picks(xq: np.ndarray, centroids: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The n blocks of largest exact inner product, best first, as FAISS's quantizers
    hand lists to the scan."""
    scores = xq @ centroids.T
    picked = np.argpartition(-scores, n - 1, axis=1)[:, :n]
    top = np.take_along_axis(scores, picked, axis=1)
    order = np.argsort(-top, axis=1)
    return np.take_along_axis(top, order, axis=1), np.take_along_axis(picked, order, axis=1)


class ResidualCoarse:
    """The block centroids as 4-bit PQ codes of their residual to their list's centroid, in
    FAISS's IVF fast-scan over the lists: as a coarse quantizer it returns a query's top
    blocks within its top `nprobe` lists."""

    def __init__(self, blocks: Blocks, m: int, nprobe: int) -> None:
        self.quantizer = faiss.IndexFlatIP(blocks.parents.shape[1])
        self.quantizer.add(blocks.parents)
        residuals = np.ascontiguousarray(blocks.centroids - blocks.parents[blocks.parent_of])
        pq = pq_books(residuals, m, 0)
        self.ivf = fast_scan_ivf(self.quantizer, len(blocks.parents), books_of(pq), True)
        self.ivf.nprobe = nprobe
        nb = len(blocks.centroids)
        add_to_lists(self.ivf, blocks.parent_of, np.arange(nb), pq.compute_codes(residuals))

    def bytes(self) -> int:
        return ivf_bytes(self.ivf)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--limit", type=int, default=None, help="a seeded sample of N synsets")
    p.add_argument("--blocks", default="512,576,640", help="blocks probed per query")
    p.add_argument("--nprobe", type=int, default=96, help="lists the residual coarse stage reads")
    args = p.parse_args()
    ns = [int(n) for n in args.blocks.split(",")]
    with tempfile.TemporaryDirectory(prefix="pith-bench-fine-") as tmp:
        ctx = context(wordnet_minilm(limit=args.limit), 2000, 0, Path(tmp))
        blocks = cut_blocks(ctx.xb, 256)
        print(f"{len(blocks.centroids):,} blocks of at most {CAP} vectors in 256 lists")
        print("\n".join(coverage_lines(ctx, blocks, (56, 64, 72, 80), ns)))
        timed = time_in_rounds(ctx, configurations(ctx, blocks, ns, args.nprobe), args.rounds)
    print(report(timed, args.rounds))


def coverage_lines(
    ctx: Context, blocks: Blocks, nprobes: tuple[int, ...], ns: list[int]
) -> list[str]:
    """Share of the exact top-10 in the lists (or blocks) a query probes, and codes scanned."""
    nq = len(ctx.xq)
    lists = blocks.parent_of[blocks.block_of]
    by_list = probe_of(np.argsort(-(ctx.xq @ blocks.parents.T), axis=1), lists, ctx.truth)
    by_block = probe_of(
        np.argsort(-(ctx.xq @ blocks.centroids.T), axis=1), blocks.block_of, ctx.truth
    )
    lines = [f"{'probed':30s} {'coverage':>8s} {'codes/q':>8s}"]
    for probe, label, counts in ((by_list, "lists", nprobes), (by_block, "blocks", ns)):
        for n in counts:
            n = min(n, probe.sizes.shape[1])
            cov, codes = probe.coverage(np.full(nq, n)), probe.codes(np.full(nq, n))
            lines.append(f"{f'{n} {label} (exact scores)':30s} {cov:8.4f} {codes:8,.0f}")
    return lines


def configurations(ctx: Context, blocks: Blocks, ns: list[int], nprobe: int) -> list[Timed]:
    """FAISS's baseline, end to end and its scan alone; the blocks' scan alone at each n
    (exact picks made beforehand, not timed); the blocks end to end with an exact coarse stage
    and with the residual one. RAM per vector in the names."""
    n_vec, d = ctx.xb.shape
    folder = ctx.workdir / "blocks"
    folder.mkdir()
    pq = pq_books(ctx.xb, d // 4, 0)
    refine = float16_file(ctx.xb, folder / "refine.faiss")
    flat = faiss.IndexFlatIP(d)
    flat.add(blocks.centroids)
    exact = BlockIndex(ctx.xb, blocks, pq, flat, refine)
    residual = ResidualCoarse(blocks, d // 4, nprobe)
    by_residual = BlockIndex(ctx.xb, blocks, pq, residual.ivf, refine)
    lists_b = exact.list_bytes() / n_vec
    exact_b = lists_b + blocks.centroids.astype(np.float32).nbytes / n_vec
    residual_b = lists_b + residual.bytes() / n_vec
    timed = baselines(ctx, refine)
    for n in ns:
        timed.append(Timed(f"blocks {n}, scan only, blocks given", given(ctx, exact, blocks, n)))
    for n in ns:
        name = f"blocks {n}, exact coarse + rerank 100 ({exact_b:.1f} B)"
        timed.append(Timed(name, partial(exact.search, n=n)))
    for n in ns:
        name = f"blocks {n} of {nprobe} lists, residual coarse + rerank 100 ({residual_b:.1f} B)"
        timed.append(Timed(name, partial(by_residual.search, n=n)))
    return timed


def baselines(ctx: Context, refine: faiss.Index) -> list[Timed]:
    """FAISS's IVF512 baseline (`bench.single.fast_scan_baseline`) end to end, and the same
    trained index's scan alone (the 100 it would re-rank)."""
    d = ctx.xb.shape[1]
    name = fast_scan_baseline(d // 4)[0]
    scan = faiss.index_factory(d, f"IVF512,PQ{d // 4}x4fs", IP)
    scan.train(ctx.xb)
    scan.add(ctx.xb)
    faiss.extract_index_ivf(scan).nprobe = 128
    whole = refined(scan, refine, RERANK)
    return [
        Timed(name, lambda q: whole.search(q, K)[1]),
        Timed(name.split(" + ")[0] + ", scan only", lambda q: scan.search(q, RERANK)[1][:, :K]),
    ]


def given(ctx: Context, index: BlockIndex, blocks: Blocks, n: int) -> Search:
    """The blocks' scan with the exact picks for ctx.xq made beforehand."""
    scores, picked = exact_picks(ctx.xq, blocks.centroids, n)

    def search(q: np.ndarray) -> np.ndarray:
        assert q is ctx.xq, "picks were made for the context's queries"
        return index.scan(q, scores, picked)

    return search


if __name__ == "__main__":
    main()
