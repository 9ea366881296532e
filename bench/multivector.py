"""Multi-vector benchmark: exact Chamfer brute force, muvera-python FDEs, pith FDEs, and pith
end-to-end (compressed FDE candidates + exact Chamfer re-rank), measured in one process on one
thread so that QPS ratios are comparable.

    python -m bench.multivector [--queries 2000] [--json out.json]
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np
import torch

from bench.datasets.base import MultiVectorDataset
from bench.metrics import ndcg_at_k, recall_at_k, recall_within
from bench.report import Row, format_table, write_json
from encoders.muvera import MuveraEncoder
from encoders.spec import BinarySpec, MuveraSpec, PQSpec
from index.multivector import MultiVectorIndex
from index.spec import IVFSpec
from kernels.chamfer import chamfer_topk

FDE_DEPTH = 100  # FDE recall: the exact top-10 found within the FDE top-100
WARMUP = 200  # queries searched before timing (maps the token file's pages)


@dataclass(frozen=True)
class Queries:
    """The benchmark's query sample, packed, with the exact Chamfer top-10 (positions)."""

    clouds: list[np.ndarray]
    tokens: np.ndarray
    offsets: np.ndarray
    qrels: np.ndarray


@dataclass(frozen=True)
class EndToEnd:
    """One pith end-to-end configuration."""

    name: str
    spec: MuveraSpec
    index_spec: IVFSpec
    candidates: tuple[int, ...]


def sample_queries(ds: MultiVectorDataset, n_queries: int, seed: int) -> Queries:
    """A seeded sample of queries (all of them when there are fewer)."""
    rng = np.random.default_rng(seed)
    n = min(n_queries, ds.n_queries)
    pick = np.sort(rng.choice(ds.n_queries, size=n, replace=False))
    o = ds.query_offsets
    clouds = [np.ascontiguousarray(ds.query_vectors[o[i] : o[i + 1]], np.float32) for i in pick]
    lengths = np.array([len(c) for c in clouds], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    return Queries(clouds, np.concatenate(clouds), offsets, np.asarray(ds.qrels)[pick])


T = TypeVar("T")


def timed(fn: Callable[[], T]) -> tuple[T, float]:
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """FAISS, torch and numpy's BLAS on one thread each (BLAS threads thrash on a busy host)."""
    faiss.omp_set_num_threads(1)
    torch.set_num_threads(1)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        yield
        return
    with threadpool_limits(limits=1):
        yield


def _log(msg: str) -> None:
    print(f"[multivector] {msg}", file=sys.stderr, flush=True)


def brute_force_row(ds: MultiVectorDataset, q: Queries) -> tuple[Row, np.ndarray]:
    """Batched exact Chamfer over every document: the baseline and the ground truth."""
    d_tokens = np.ascontiguousarray(ds.doc_vectors, dtype=np.float32)
    (_, truth), secs = timed(
        lambda: chamfer_topk(q.tokens, q.offsets, d_tokens, ds.doc_offsets, 10)
    )
    per_doc = d_tokens.nbytes / ds.n_docs
    row = Row(
        ds.name,
        "exact Chamfer brute force (torch matmul, float32 tokens in RAM)",
        True,
        per_doc,
        0.0,
        1.0,
        ndcg_at_k(truth, q.qrels),
        len(q.clouds) / secs,
        0.0,
    )
    return row, truth


def fde_row(
    ds: MultiVectorDataset,
    q: Queries,
    truth: np.ndarray,
    name: str,
    encode_docs: Callable[[], np.ndarray],
    encode_queries: Callable[[], np.ndarray],
    baseline: bool,
) -> Row:
    """FDE-only retrieval: float32 FDEs scanned exactly (IndexFlatIP)."""
    fdes, build_s = timed(encode_docs)
    flat = faiss.IndexFlatIP(fdes.shape[1])
    flat.add(np.ascontiguousarray(fdes, dtype=np.float32))
    per_doc = fdes.shape[1] * 4.0
    del fdes
    gc.collect()

    def search() -> np.ndarray:
        return flat.search(np.ascontiguousarray(encode_queries(), np.float32), FDE_DEPTH)[1]

    found, secs = timed(search)
    r100 = recall_within(found, truth, 10, FDE_DEPTH)
    return Row(
        ds.name,
        name,
        baseline,
        per_doc,
        0.0,
        recall_at_k(found, truth),
        ndcg_at_k(found, q.qrels),
        len(q.clouds) / secs,
        build_s,
        note=f"FDE R@10 in top-100 {r100:.3f}",
    )


def muvera_python_row(
    ds: MultiVectorDataset, q: Queries, truth: np.ndarray, spec: MuveraSpec
) -> Row:
    """PyPI muvera-python at the same parameters (its own seeds and Gray-code decoding)."""
    from muvera import Muvera

    dim = ds.doc_vectors.shape[1]
    enc = Muvera(
        spec.r_reps,
        spec.k_sim,
        dim,
        "identity" if spec.d_proj is None else "ams_sketch",
        spec.d_proj,
        spec.fill_empty,
        spec.final_dim,
        seed=spec.seed,
    )
    docs = [np.asarray(d, np.float32) for d in ds.docs()]
    name = f"muvera-python FDE {_spec_tag(spec)}, flat scan"
    return fde_row(
        ds,
        q,
        truth,
        name,
        lambda: enc.encode_documents(docs),
        lambda: enc.encode_queries(q.clouds),
        baseline=True,
    )


def pith_fde_row(ds: MultiVectorDataset, q: Queries, truth: np.ndarray, spec: MuveraSpec) -> Row:
    """pith FDEs at the same parameters, float32, scanned exactly."""
    enc = MuveraEncoder(spec, ds.doc_vectors.shape[1])
    name = f"pith FDE {_spec_tag(spec)}, flat scan"

    def encode_docs() -> np.ndarray:
        return enc.encode_packed(ds.doc_vectors, ds.doc_offsets, False)

    def encode_queries() -> np.ndarray:
        return enc.encode_packed(q.tokens, q.offsets, True)

    return fde_row(ds, q, truth, name, encode_docs, encode_queries, baseline=False)


def end_to_end_rows(
    ds: MultiVectorDataset, q: Queries, truth: np.ndarray, config: EndToEnd
) -> list[Row]:
    """Build one MultiVectorIndex, then search at each candidate count."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="pith-bench-mv-") as tmp:
        index = MultiVectorIndex(
            MuveraEncoder(config.spec, ds.doc_vectors.shape[1]), config.index_spec, Path(tmp)
        )
        docs = ds.docs()
        _, build_s = timed(lambda: _build(index, docs))
        ram = index.bytes_in_ram() / ds.n_docs
        disk = index.bytes_on_disk() / ds.n_docs
        fde_found = index.candidates(q.clouds, FDE_DEPTH).ids
        r100 = recall_within(fde_found, truth, 10, FDE_DEPTH)
        for c in config.candidates:
            index.search(q.clouds[:WARMUP], 10, candidates=c)  # page in the token file
            res, secs = timed(partial(index.search, q.clouds, 10, candidates=c))
            found = res.ids
            rows.append(
                Row(
                    ds.name,
                    f"pith {config.name}, Chamfer re-rank of {c}",
                    False,
                    ram,
                    disk,
                    recall_at_k(found, truth),
                    ndcg_at_k(found, q.qrels),
                    len(q.clouds) / secs,
                    build_s,
                    note=f"FDE R@10 in top-100 {r100:.3f}",
                )
            )
            _log(f"{rows[-1]}")
    return rows


def _build(index: MultiVectorIndex, docs: list[np.ndarray]) -> None:
    index.train(docs)
    index.add(np.arange(len(docs)), docs)


def _spec_tag(spec: MuveraSpec) -> str:
    proj = "identity" if spec.d_proj is None else f"d_proj {spec.d_proj}"
    final = f", final {spec.final_dim}" if spec.final_dim else ""
    return f"(r {spec.r_reps}, k_sim {spec.k_sim}, {proj}{final}) {_storage_tag(spec.fde)}"


def _storage_tag(fde: object) -> str:
    if isinstance(fde, PQSpec):
        scan = ", fast-scan" if fde.nbits == 4 else ""
        return f"pq m{fde.m}x{fde.nbits}b{scan}"
    if isinstance(fde, BinarySpec):
        return f"binary {fde.bits} bit/dim{', learned' if fde.learned else ''}"
    return str(getattr(fde, "kind", fde))


def end_to_end_configs(seed: int) -> list[EndToEnd]:
    """The compressed configurations measured end to end: FDEs with fewer partitions and more
    repetitions than the paper's default (better candidates at the same 10,240 dimensions),
    stored as 4-bit PQ (FAISS fast-scan, 1,280 B) or as 1-bit BEBR codes (1,280 B, SDC)."""
    pq = PQSpec(m=2560, nbits=4, opq=False, balanced=False, iterations=10, max_train=20_000)
    binary = BinarySpec(bits=1, learned=False)
    one_list = IVFSpec(nlist=1, nprobe=1, by_residual=False)
    out = []
    for fde, candidates in ((pq, (300, 400, 500)), (binary, (400,))):
        spec = MuveraSpec(r_reps=80, k_sim=3, d_proj=16, seed=seed, fde=fde)
        out.append(EndToEnd(f"FDE {_spec_tag(spec)}", spec, one_list, candidates))
    return out


def run_multivector(
    ds: MultiVectorDataset, n_queries: int = 2000, seed: int = 0, ratio_only: bool = False
) -> list[Row]:
    """All rows for one dataset, single-threaded, baselines first (`ratio_only`: the brute
    force and the first end-to-end configuration only)."""
    with one_thread():
        return _rows(ds, n_queries, seed, ratio_only)


def _rows(ds: MultiVectorDataset, n_queries: int, seed: int, ratio_only: bool) -> list[Row]:
    q = sample_queries(ds, n_queries, seed)
    _log(f"{ds.n_docs} documents, {len(q.clouds)} queries")
    bf, truth = brute_force_row(ds, q)
    _log(f"{bf}")
    rows = [bf]
    if not ratio_only:
        fde_spec = MuveraSpec(r_reps=20, k_sim=5, d_proj=16, seed=seed)
        rows.append(muvera_python_row(ds, q, truth, fde_spec))
        _log(f"{rows[-1]}")
        rows.append(pith_fde_row(ds, q, truth, fde_spec))
        _log(f"{rows[-1]}")
        r80 = MuveraSpec(r_reps=80, k_sim=3, d_proj=16, seed=seed)
        rows.append(pith_fde_row(ds, q, truth, r80))
        _log(f"{rows[-1]}")
    for config in end_to_end_configs(seed)[: 1 if ratio_only else None]:
        rows.extend(end_to_end_rows(ds, q, truth, config))
    rows[0] = timed_again(rows[0], ds, q)
    return rows


def timed_again(first: Row, ds: MultiVectorDataset, q: Queries) -> Row:
    """The brute-force row with the faster of two timings, one before the other rows and one
    after them: a machine whose load changes during the run slows one of them, and every
    other row's ratio to this one would be off by as much."""
    again, _ = brute_force_row(ds, q)
    _log(f"brute force again: {again.qps:.1f} QPS (first {first.qps:.1f})")
    note = f"QPS: the faster of {first.qps:.1f} (first) and {again.qps:.1f} (last)"
    return dataclasses.replace(first, qps=max(first.qps, again.qps), note=note)


def main() -> None:
    from bench.datasets.wordnet import wordnet_minilm_tokens

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument(
        "--ratio-only",
        action="store_true",
        help="the brute force and the pq end-to-end rows only (the speed-up target)",
    )
    args = parser.parse_args()
    rows = run_multivector(wordnet_minilm_tokens(), args.queries, args.seed, args.ratio_only)
    print(format_table(rows))
    if args.json is not None:
        write_json(rows, args.json)


if __name__ == "__main__":
    main()
