"""Check every torch/Triton query-path kernel against a float64 CPU reference on fresh random
data, then time it (CUDA events) against the CPU path (numpy/FAISS) in the same run.

    python -m bench.gpu_check                                   # CUDA: 1M and 10M codes
    python -m bench.gpu_check --device cpu --sizes 10000,100000 # torch's CPU backend (tests)

Kernels: LUT scans with top-k (SDC over 64-byte codes, m=64 x 8 bits; ADC over packed 4-bit
codes, m=64), exhaustive float16 inner-product top-k (d=128), Chamfer re-rank (1,000 candidates
x 32 tokens x 128-d per query, token store in host memory or on the device), MUVERA FDE batch
encoding of documents (32 tokens x 128-d, r=20, k_sim=5, d_proj=16, empty partitions filled).
Checks: scores within a relative error bound of the float64 reference, top-k ids tie-aware
(every returned id scores at least the reference k-th score minus the bound). Device memory is
filled with NaN bytes before each checked run, so a kernel that skips writing an output fails.
The scan rows also report the share of the bandwidth floor (code bytes / measured device copy
bandwidth, read + write bytes counted). FAISS is optional: without it the CPU path is numpy
(and torch on the CPU for the scans).
Exit status 1 when any check fails.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from kernels import dispatch, torch_chamfer, torch_scan, triton_scan
from kernels.fde import FdeMatrices, _fde_chunk, chunk_bounds
from kernels.torch_fde import TorchFde

DIM = 128
M = 64
TOKENS = 32
CANDIDATES = 1000
RTOL = 1e-4


@dataclass
class Row:
    kernel: str
    n: int
    impl: str
    ms: float
    speedup: float | None  # CPU path time / this time
    error: float | None  # max relative error vs the float64 reference
    ok: bool | None
    note: str = ""


@dataclass
class Ctx:
    dev: torch.device
    queries: int
    k: int
    repeats: int
    bandwidth: float  # device copy bandwidth, bytes/s (read + write)
    seed: int


# timing and checks -------------------------------------------------------------------------
def poison(dev: torch.device) -> None:
    """Fill free allocator memory with 0xFF bytes (NaN as float32) before a checked run."""
    if dev.type != "cuda":
        return
    free = torch.cuda.mem_get_info(dev)[0]
    block = torch.empty(int(min(free // 2, 16 << 30)), dtype=torch.uint8, device=dev)
    block.fill_(0xFF)
    del block


def time_ms(fn: Callable[[], Any], dev: torch.device, repeats: int) -> float:
    """Median milliseconds of fn after one warm-up: CUDA events on a GPU, else wall time."""
    fn()
    times = []
    for _ in range(repeats):
        if dev.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            torch.cuda.synchronize(dev)
            times.append(start.elapsed_time(end))
        else:
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def time_host_ms(fn: Callable[[], Any], repeats: int) -> float:
    """Median wall milliseconds of a CPU-path call (no warm-up needed)."""
    times = []
    for _ in range(max(repeats, 1)):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def check_topk(ref: np.ndarray, scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[float, bool]:
    """(max relative score error, ok) of a top-k answer against reference scores (nq, n)."""
    n = ref.shape[1]
    scale = np.abs(ref).max(axis=1, keepdims=True) + 1e-30
    if ids.shape != (len(ref), min(k, n)) or (ids < 0).any() or (ids >= n).any():
        return float("inf"), False
    unique = all(len(set(row.tolist())) == len(row) for row in ids)
    truth = np.take_along_axis(ref, ids, axis=1)
    err = float((np.abs(scores.astype(np.float64) - truth) / scale).max())
    kth = -np.partition(-ref, min(k, n) - 1, axis=1)[:, min(k, n) - 1 : min(k, n)]
    ok = unique and err <= RTOL and bool((truth >= kth - RTOL * scale).all())
    return err, ok


def check_dense(ref: np.ndarray, got: np.ndarray) -> tuple[float, bool]:
    """(max error relative to max |ref|, ok) of a dense output."""
    if got.shape != ref.shape or not np.isfinite(got).all():
        return float("inf"), False
    err = float(np.abs(got.astype(np.float64) - ref).max() / (np.abs(ref).max() + 1e-30))
    return err, err <= RTOL


def bulk_normal(ctx: Ctx, shape: tuple[int, ...], salt: int, dtype: torch.dtype) -> np.ndarray:
    """Large seeded N(0, 1) arrays drawn on the device (fast), returned in host memory."""
    gen = torch.Generator(device=ctx.dev).manual_seed(ctx.seed * 1_000_003 + salt)
    x = torch.randn(shape, generator=gen, device=ctx.dev, dtype=torch.float32).to(dtype)
    return dispatch.to_numpy(x)


def bulk_bytes(ctx: Ctx, shape: tuple[int, ...], salt: int) -> np.ndarray:
    """Large seeded uniform uint8 arrays drawn on the device, returned in host memory."""
    gen = torch.Generator(device=ctx.dev).manual_seed(ctx.seed * 1_000_003 + salt)
    x = torch.randint(0, 256, shape, generator=gen, device=ctx.dev, dtype=torch.uint8)
    return dispatch.to_numpy(x)


def faiss_module() -> Any:
    """FAISS when importable (the CPU path), else None (numpy stands in)."""
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def copy_bandwidth(dev: torch.device) -> float:
    """Device copy bandwidth in bytes/s, read and write bytes counted."""
    nbytes = 1 << 30 if dev.type == "cuda" else 1 << 27
    src = torch.ones(nbytes, dtype=torch.uint8, device=dev)
    dst = torch.empty_like(src)
    ms = time_ms(lambda: dst.copy_(src), dev, 10)
    return 2 * nbytes / (ms / 1e3)


# LUT scans ---------------------------------------------------------------------------------
def unpack_np(codes: np.ndarray, nbits: int) -> np.ndarray:
    """(n, m) keys of nbits 8 or packed 4 codes, written independently of the torch path."""
    if nbits == 8:
        return codes
    out = np.empty((len(codes), 2 * codes.shape[1]), dtype=np.uint8)
    out[:, 0::2], out[:, 1::2] = codes & 15, codes >> 4
    return out


def lut_reference(luts: np.ndarray, keys: np.ndarray) -> np.ndarray:
    """(nq, n) float64 sums of table entries, in chunks of codes."""
    nq, m, ksub = luts.shape
    flat = luts.reshape(nq, m * ksub)
    out = np.empty((nq, len(keys)), dtype=np.float64)
    for s in range(0, len(keys), 1 << 20):
        cols = keys[s : s + (1 << 20)].T.astype(np.int64) + (np.arange(m) * ksub)[:, None]
        acc = np.zeros((nq, cols.shape[1]))
        for j in range(m):
            acc += flat[:, cols[j]]
        out[:, s : s + cols.shape[1]] = acc
    return out


def lut_inputs(ctx: Ctx, n: int, nbits: int, rng: np.random.Generator) -> dict[str, Any]:
    """Random codes and tables: SDC (nbits 8, symmetric table rows) or ADC (nbits 4)."""
    ksub, dsub = 1 << nbits, DIM // M
    codes = bulk_bytes(ctx, (n, M * nbits // 8), salt=n + nbits)
    books = rng.standard_normal((M, ksub, dsub))
    if nbits == 8:  # SDC: one codebook shared by all segments, the query is a code too
        books[:] = books[0]
        qkeys = rng.integers(0, ksub, (ctx.queries, M))
        xq = books[np.arange(M), qkeys].reshape(ctx.queries, DIM)
        table = books[0] @ books[0].T
        luts64 = table[qkeys]
        luts = torch_scan.sdc_tables(
            torch.from_numpy(qkeys).to(ctx.dev),
            torch.from_numpy(table.astype(np.float32)).to(ctx.dev),
        )
    else:
        xq = rng.standard_normal((ctx.queries, DIM))
        luts64 = np.einsum("qmd,mkd->qmk", xq.reshape(ctx.queries, M, dsub), books)
        luts = torch_scan.adc_tables(
            torch.from_numpy(xq.astype(np.float32)).to(ctx.dev),
            torch.from_numpy(books.astype(np.float32)).to(ctx.dev),
        )
    return {
        "codes": codes,
        "books": books,
        "xq": xq.astype(np.float32),
        "luts64": luts64,
        "luts": luts,
    }


def faiss_pq(faiss: Any, codes: np.ndarray, books: np.ndarray, nbits: int) -> Any:
    """A FAISS IndexPQ (inner product) holding the given codes and codebooks."""
    index = faiss.IndexPQ(DIM, M, nbits, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(books.astype(np.float32).ravel(), index.pq.centroids)
    index.pq.sync_transposed_centroids()
    index.is_trained = True
    index.add_sa_codes(codes)
    return index


def cpu_lut_search(inp: dict[str, Any], nbits: int, k: int, nq: int) -> Callable[[], tuple]:
    """The CPU path: FAISS IndexPQ search (or the torch scan on the CPU without FAISS)."""
    faiss = faiss_module()
    xq = inp["xq"][:nq]
    if faiss is not None:
        index = faiss_pq(faiss, inp["codes"], inp["books"], nbits)
        return lambda: index.search(xq, k)
    codes = torch.from_numpy(inp["codes"])
    luts = torch.from_numpy(inp["luts64"][:nq].astype(np.float32))

    def torch_cpu_scan() -> tuple:
        scores, ids = torch_scan.lut_topk(luts, codes, nbits, k, use_triton=False)
        return scores.numpy(), ids.numpy()

    return torch_cpu_scan


def lut_rows(ctx: Ctx, n: int, nbits: int) -> list[Row]:
    """Check and time the LUT scan (torch gather loop, Triton) at n codes."""
    rng = np.random.default_rng([ctx.seed, n, nbits])
    inp = lut_inputs(ctx, n, nbits, rng)
    ref = lut_reference(inp["luts64"], unpack_np(inp["codes"], nbits))
    codes = torch.from_numpy(inp["codes"]).to(ctx.dev)
    name = "sdc scan m64x8" if nbits == 8 else "adc scan m64x4"
    impls = {"torch": False}
    if triton_scan.available(ctx.dev) and ctx.dev.type == "cuda":
        impls["triton"] = True
    rows = []
    floor_ms = inp["codes"].nbytes / ctx.bandwidth * 1e3
    for nq in sorted({1, ctx.queries}):
        cpu = cpu_lut_search(inp, nbits, ctx.k, nq)
        cpu_ms = time_host_ms(cpu, 1 if n >= 1_000_000 else ctx.repeats)
        d, i = cpu()
        err, ok = check_topk(ref[:nq], d, i, ctx.k)
        impl = "faiss-cpu" if faiss_module() is not None else "torch-cpu"
        rows.append(Row(name, n, f"{impl} nq={nq}", cpu_ms, 1.0, err, ok))
        for label, use_triton in impls.items():
            luts = inp["luts"][:nq]

            def run(luts: torch.Tensor = luts, use_triton: bool = use_triton) -> tuple:
                return torch_scan.lut_topk(luts, codes, nbits, ctx.k, use_triton=use_triton)

            poison(ctx.dev)
            try:
                s, ids = run()
            except Exception as exc:  # a Triton compile error must not hide the other rows
                traceback.print_exc()
                rows.append(
                    Row(
                        name,
                        n,
                        f"{label} nq={nq}",
                        float("nan"),
                        None,
                        None,
                        False,
                        repr(exc)[:200],
                    )
                )
                continue
            err, ok = check_topk(ref[:nq], dispatch.to_numpy(s), dispatch.to_numpy(ids), ctx.k)
            ms = time_ms(run, ctx.dev, ctx.repeats)
            note = f"{100 * floor_ms / ms:.0f}% of bw floor {floor_ms:.3f} ms"
            rows.append(Row(name, n, f"{label} nq={nq}", ms, cpu_ms / ms, err, ok, note))
    return rows


# float16 inner-product search --------------------------------------------------------------
def fp16_rows(ctx: Ctx, n: int) -> list[Row]:
    """Check and time exhaustive float16 IP top-k at n vectors."""
    rng = np.random.default_rng([ctx.seed, n, 16])
    xb = bulk_normal(ctx, (n, DIM), salt=n + 16, dtype=torch.float16)
    xq = rng.standard_normal((ctx.queries, DIM), dtype=np.float32)
    ref = np.empty((ctx.queries, n))
    for s in range(0, n, 1 << 20):
        ref[:, s : s + (1 << 20)] = (
            xq.astype(np.float64) @ xb[s : s + (1 << 20)].astype(np.float64).T
        )
    faiss = faiss_module()
    if faiss is not None:
        index = faiss.IndexScalarQuantizer(
            DIM, faiss.ScalarQuantizer.QT_fp16, faiss.METRIC_INNER_PRODUCT
        )
        index.add_sa_codes(xb.view(np.uint8))
        cpu: Callable[[], tuple] = lambda: index.search(xq, ctx.k)  # noqa: E731
    else:
        cpu = lambda: numpy_ip_topk(xq, xb, ctx.k)  # noqa: E731
    cpu_ms = time_host_ms(cpu, 1 if n >= 1_000_000 else ctx.repeats)
    d, i = cpu()
    err, ok = check_topk(ref, d, i, ctx.k)
    rows = [Row("fp16 ip top-k d128", n, "faiss-cpu" if faiss else "numpy", cpu_ms, 1.0, err, ok)]
    xb_t = torch.from_numpy(xb).to(ctx.dev)
    xq_t = torch.from_numpy(xq).to(ctx.dev)
    poison(ctx.dev)
    s, ids = torch_scan.fp16_ip_topk(xq_t, xb_t, ctx.k)
    err, ok = check_topk(ref, dispatch.to_numpy(s), dispatch.to_numpy(ids), ctx.k)
    ms = time_ms(lambda: torch_scan.fp16_ip_topk(xq_t, xb_t, ctx.k), ctx.dev, ctx.repeats)
    floor_ms = xb.nbytes / ctx.bandwidth * 1e3
    note = f"nq={ctx.queries}; {100 * floor_ms / ms:.0f}% of bw floor {floor_ms:.3f} ms"
    rows.append(Row("fp16 ip top-k d128", n, "torch", ms, cpu_ms / ms, err, ok, note))
    return rows


def numpy_ip_topk(xq: np.ndarray, xb: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    scores = np.concatenate(
        [xq @ xb[s : s + (1 << 20)].astype(np.float32).T for s in range(0, len(xb), 1 << 20)],
        axis=1,
    )
    ids = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return np.take_along_axis(scores, ids, axis=1), ids


# Chamfer re-rank ---------------------------------------------------------------------------
def chamfer_reference(q: np.ndarray, store: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """(nq, c) float64 Chamfer scores; every candidate has TOKENS rows from its start."""
    nq = len(starts)
    queries = q.reshape(nq, TOKENS, DIM).astype(np.float64)
    out = np.empty(starts.shape)
    for i in range(nq):
        cands = store[starts[i][:, None] + np.arange(TOKENS)].astype(np.float64)  # (c, T, d)
        out[i] = np.einsum("ctd,qd->cqt", cands, queries[i]).max(axis=2).sum(axis=1)
    return out


def chamfer_rows(ctx: Ctx, n: int) -> list[Row]:
    """Check and time the Chamfer re-rank of 1,000 candidates per query, store ~n/100 docs."""
    from kernels.chamfer import chamfer_rerank  # the CPU path (PITH_KERNELS=cpu in main)

    rng = np.random.default_rng([ctx.seed, n, 32])
    docs = int(min(max(2 * CANDIDATES, n // 100), 100_000))
    store = bulk_normal(ctx, (docs * TOKENS, DIM), salt=n + 32, dtype=torch.float16)
    nq = ctx.queries
    q = rng.standard_normal((nq * TOKENS, DIM), dtype=np.float32)
    q_offsets = np.arange(nq + 1) * TOKENS
    cand = np.stack([rng.choice(docs, CANDIDATES, replace=False) for _ in range(nq)])
    starts, lengths = cand * TOKENS, np.full(cand.shape, TOKENS)
    ref = chamfer_reference(q, store, starts)

    def cpu() -> tuple:
        return chamfer_rerank(
            q[:TOKENS], q_offsets[:2], cand[:1], starts[:1], lengths[:1], store, ctx.k
        )

    cpu_ms = time_host_ms(cpu, ctx.repeats)
    err, ok = check_topk(ref[:1], *_positions(cpu(), cand[:1]), k=ctx.k)
    rows = [Row("chamfer rerank 1000x32x128", n, "numpy/torch-cpu nq=1", cpu_ms, 1.0, err, ok)]
    store_dev = torch.from_numpy(store).to(ctx.dev)
    for label, tokens in (("torch host store", store), ("torch device store", store_dev)):
        poison(ctx.dev)
        got = torch_chamfer.chamfer_rerank(
            q, q_offsets, cand, starts, lengths, tokens, ctx.k, ctx.dev
        )
        err, ok = check_topk(ref, *_positions(got, cand), k=ctx.k)

        def run(tokens: Any = tokens) -> Any:
            return torch_chamfer.chamfer_scores(
                q[:TOKENS], q_offsets[:2], starts[:1], lengths[:1], tokens, ctx.dev
            )

        ms = time_ms(run, ctx.dev, ctx.repeats)
        rows.append(Row("chamfer rerank 1000x32x128", n, f"{label} nq=1", ms, cpu_ms / ms, err, ok))
    return rows


def _positions(result: tuple, cand: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(scores, candidate positions) of a re-rank answer given in candidate ids."""
    scores, ids = result
    pos = np.stack([np.searchsorted(np.sort(c), i) for c, i in zip(cand, ids, strict=True)])
    order = np.stack([np.argsort(c) for c in cand])
    return scores, np.take_along_axis(order, pos, axis=1)


# MUVERA FDE --------------------------------------------------------------------------------
def fde_inputs(ctx: Ctx, docs: int) -> tuple[np.ndarray, np.ndarray, FdeMatrices]:
    """Tokens whose sketch projections are all clear of zero (so float32 and float64 agree on
    every sketch bit), offsets of docs x TOKENS, and the FDE matrices."""
    rng = np.random.default_rng([ctx.seed, docs, 5])
    r, k_sim, d_proj = 20, 5, 16
    simhash = rng.standard_normal((DIM, r * k_sim)).astype(np.float32)
    projection = (rng.integers(0, 2, (DIM, r * d_proj)) * 2 - 1).astype(np.float32)
    mats = FdeMatrices(simhash, projection, r, k_sim)
    x = rng.standard_normal((docs * TOKENS, DIM)).astype(np.float32)
    norms = np.linalg.norm(simhash, axis=0).astype(np.float64)
    todo = np.arange(len(x))
    while len(todo):  # float32 GEMM error is below ~1e-5 of |x| |s| for 128 terms
        z = x[todo].astype(np.float64)
        margin = np.abs(z @ simhash) / (np.linalg.norm(z, axis=1)[:, None] * norms)
        todo = todo[margin.min(axis=1) < 3e-5]
        x[todo] = rng.standard_normal((len(todo), DIM)).astype(np.float32)
    return x, np.arange(docs + 1) * TOKENS, mats


def fde_reference(x: np.ndarray, offsets: np.ndarray, mats: FdeMatrices) -> np.ndarray:
    """Document FDEs computed in float64 by the CPU kernel's own chunk function."""
    wide = FdeMatrices(
        mats.simhash.astype(np.float64), mats.projection.astype(np.float64), mats.r_reps, mats.k_sim
    )
    out = np.empty((len(offsets) - 1, mats.fde_dim))
    for s, e in chunk_bounds(offsets, mats.r_reps * mats.d_proj):
        lo, hi = int(offsets[s]), int(offsets[e])
        out[s:e] = _fde_chunk(
            x[lo:hi].astype(np.float64), offsets[s : e + 1] - lo, wide, False, True
        )
    return out


def fde_rows(ctx: Ctx, n: int) -> list[Row]:
    """Check and time FDE encoding of n / 1000 documents (at least 20)."""
    from kernels.fde import fde_batch  # the CPU path (PITH_KERNELS=cpu in main)

    docs = max(20, n // 1000)
    x, offsets, mats = fde_inputs(ctx, docs)
    ref = fde_reference(x, offsets, mats)
    cpu_ms = time_host_ms(lambda: fde_batch(x, offsets, mats, False, True), 1)
    err, ok = check_dense(ref, fde_batch(x, offsets, mats, False, True))
    name = f"fde docs x{TOKENS}x{DIM} r20 k5"
    rows = [Row(name, docs, "numpy", cpu_ms, 1.0, err, ok)]
    encoder = TorchFde(mats, ctx.dev)
    x_dev = torch.from_numpy(x).to(ctx.dev)
    poison(ctx.dev)
    err, ok = check_dense(
        ref, dispatch.to_numpy(encoder.encode_device(x_dev, offsets, False, True))
    )
    ms = time_ms(lambda: encoder.encode_device(x_dev, offsets, False, True), ctx.dev, ctx.repeats)
    rows.append(Row(name, docs, "torch device tokens", ms, cpu_ms / ms, err, ok))
    return rows


# main --------------------------------------------------------------------------------------
def print_table(rows: list[Row], out: Any = sys.stdout) -> None:
    head = f"{'kernel':28} {'n':>10} {'impl':26} {'ms':>10} {'x cpu':>7} {'rel err':>9} check  note"
    print(head, file=out)
    for r in rows:
        speed = f"{r.speedup:.1f}" if r.speedup is not None else "-"
        err = f"{r.error:.1e}" if r.error is not None else "-"
        check = {True: "ok", False: "FAIL", None: "-"}[r.ok]
        cells = f"{r.kernel:28} {r.n:>10} {r.impl:26} {r.ms:>10.3f} {speed:>7} {err:>9}"
        print(f"{cells} {check:5}  {r.note}", file=out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="cuda", help="cuda or cpu (torch's CPU backend)")
    p.add_argument("--sizes", default="1000000,10000000", help="codes per scan, comma separated")
    p.add_argument("--queries", type=int, default=4, help="queries per checked batch")
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="comma-separated subset: sdc,adc,fp16,chamfer,fde")
    p.add_argument("--json", default="", help="also write the rows to this file")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    os.environ[dispatch.ENV_VAR] = "cpu"  # the baselines call the CPU path explicitly
    torch.manual_seed(args.seed)
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: CUDA is not available (use --device cpu)", file=sys.stderr)
        return 2
    ctx = Ctx(dev, args.queries, args.k, args.repeats, copy_bandwidth(dev), args.seed)
    print(
        f"device {dev} ({torch.cuda.get_device_name(dev) if dev.type == 'cuda' else 'cpu'}), "
        f"copy bandwidth {ctx.bandwidth / 1e9:.0f} GB/s, faiss: {faiss_module() is not None}, "
        f"triton: {triton_scan.available(dev)}",
        flush=True,
    )
    only = set(filter(None, args.only.split(","))) or {"sdc", "adc", "fp16", "chamfer", "fde"}
    rows: list[Row] = []
    for n in (int(s) for s in args.sizes.split(",")):
        suites = {
            "sdc": lambda n=n: lut_rows(ctx, n, 8),
            "adc": lambda n=n: lut_rows(ctx, n, 4),
            "fp16": lambda n=n: fp16_rows(ctx, n),
            "chamfer": lambda n=n: chamfer_rows(ctx, n),
            "fde": lambda n=n: fde_rows(ctx, n),
        }
        for name, suite in suites.items():
            if name in only:
                try:
                    new = suite()
                except Exception as exc:  # report and go on with the other kernels
                    traceback.print_exc()
                    new = [Row(name, n, "error", float("nan"), None, None, False, repr(exc)[:200])]
                print_table(new)
                rows.extend(new)
                sys.stdout.flush()
    print("\nsummary")
    print_table(rows)
    print(f"total {time.perf_counter() - started:.0f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {"bandwidth_bytes_per_s": ctx.bandwidth, "rows": [asdict(r) for r in rows]},
                f,
                indent=1,
            )
    return 0 if all(r.ok is not False for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
