"""Optional Triton kernel for the lookup-table scan (nbits 8 and packed nbits 4): one program
reads a tile of codes once, keeps its keys in registers and sums table entries for every query,
so the codes cross memory once per scan whatever the number of queries.

Used by `kernels.torch_scan.lut_topk` on CUDA when Triton imports; elsewhere `available()` is
False and the torch gather loop runs. TRITON_INTERPRET=1 runs it on CPU tensors (tests).
"""

import os
from typing import Any

import torch

try:
    import triton
    import triton.language as tl
except ImportError:  # no Triton: the torch path runs
    triton = None
    tl = None

BLOCK_N = 128  # codes per program under the interpreter (autotuned on CUDA)


def available(dev: torch.device) -> bool:
    """True when the Triton kernel can run on `dev` (CUDA, or the interpreter)."""
    if triton is None:
        return False
    return dev.type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1"


def _configs() -> list[Any]:
    """Tile sizes tried once per (M, nbits) on the first call; one under the interpreter."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return [triton.Config({"BLOCK": BLOCK_N}, num_warps=4)]
    sizes = [(64, 2), (64, 4), (128, 4), (128, 8), (256, 8)]
    return [triton.Config({"BLOCK": b}, num_warps=w) for b, w in sizes]


if triton is not None:

    @triton.autotune(configs=_configs(), key=["M", "NBITS"])
    @triton.jit
    def _lut_scan(
        codes_ptr: Any,
        lut_ptr: Any,
        out_ptr: Any,
        n: Any,
        nq: Any,
        CODE_SIZE: tl.constexpr,
        M: tl.constexpr,
        KSUB: tl.constexpr,
        NBITS: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK: tl.constexpr,
    ) -> None:
        """out[q, i] = sum_j lut[q, j, key(codes[i], j)] for the BLOCK codes of this program."""
        rows = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        j = tl.arange(0, BLOCK_M)
        ok = (rows < n)[:, None] & (j < M)[None, :]
        base = codes_ptr + rows[:, None].to(tl.int64) * CODE_SIZE
        if NBITS == 8:
            keys = tl.load(base + j[None, :], mask=ok, other=0).to(tl.int32)
        else:
            packed = tl.load(base + (j // 2)[None, :], mask=ok, other=0).to(tl.int32)
            keys = (packed >> ((j % 2) * 4)[None, :]) & 15
        offsets = j[None, :] * KSUB + keys
        for q in range(nq):
            vals = tl.load(lut_ptr + q * M * KSUB + offsets, mask=ok, other=0.0)
            tl.store(out_ptr + q * n + rows, tl.sum(vals, axis=1), mask=rows < n)


def lut_scores(luts: torch.Tensor, codes: torch.Tensor, nbits: int) -> torch.Tensor:
    """(nq, n) float32 table-scan scores of codes (n, code_size) uint8, nbits 8 or 4."""
    if triton is None or nbits not in (4, 8):
        raise RuntimeError("triton_scan: needs Triton and nbits 8 or 4")
    nq, m, ksub = luts.shape
    codes = codes.contiguous()
    luts = luts.float().contiguous()
    n = len(codes)
    out = torch.empty((nq, n), dtype=torch.float32, device=luts.device)
    if n == 0 or nq == 0:
        return out

    def grid(meta: dict[str, Any]) -> tuple[int]:
        return (triton.cdiv(n, meta["BLOCK"]),)

    _lut_scan[grid](
        codes,
        luts,
        out,
        n,
        nq,
        CODE_SIZE=codes.shape[1],
        M=m,
        KSUB=ksub,
        NBITS=nbits,
        BLOCK_M=triton.next_power_of_2(m),
    )
    return out
