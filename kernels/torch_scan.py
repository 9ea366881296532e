"""Exhaustive scans in torch (CUDA, or torch's CPU backend in tests): lookup-table (SDC/ADC)
scans over PQ-layout codes with top-k, and float16 inner-product search.

Codes use FAISS's ProductQuantizer layout: m keys of `nbits` bits packed LSB-first, so
nbits=8 is one byte per key and nbits=4 packs key 2j in the low nibble of byte j. A lookup table
(nq, m, 2**nbits) holds, for each query and sub-quantizer, the score of each key; a code's score
is the sum of its m entries. Scores are larger-is-better throughout (L2 tables hold negated
squared distances), ids are positions unless an id vector is given, and missing results are
(-inf, -1) as in `kernels.topk`.
"""

from __future__ import annotations

import torch

from kernels import triton_scan

_SCORES_PER_CHUNK = 1 << 24  # bound on queries x codes of one chunk's score block
_MIN_CHUNK = 1 << 12
_GATHER_ROWS = 1 << 21  # codes per chunk of the gather loop (its int64 keys: 16 B per key)


def unpack_keys(codes: torch.Tensor, m: int, nbits: int) -> torch.Tensor:
    """(n, code_size) uint8 codes -> (n, m) int64 keys."""
    if nbits == 8:
        return codes[:, :m].long()
    if nbits == 4:
        low, high = (codes & 15).long(), (codes >> 4).long()
        return torch.stack((low, high), dim=2).reshape(len(codes), -1)[:, :m]
    shifts = torch.arange(8, device=codes.device, dtype=torch.uint8)
    bits = ((codes[:, :, None] >> shifts) & 1).reshape(len(codes), -1)[:, : m * nbits]
    weights = 1 << torch.arange(nbits, device=codes.device, dtype=torch.int64)
    return (bits.reshape(len(codes), m, nbits).long() * weights).sum(-1)


def adc_tables(xq: torch.Tensor, books: torch.Tensor, metric: str = "ip") -> torch.Tensor:
    """(nq, m, ksub) tables of queries (nq, m * dsub) in the codebooks' space (m, ksub, dsub)."""
    m, _, dsub = books.shape
    q = xq.reshape(len(xq), m, dsub).to(books.dtype)
    ip = torch.einsum("qmd,mkd->qmk", q, books)
    if metric == "ip":
        return ip
    return 2 * ip - (q * q).sum(-1, keepdim=True) - (books * books).sum(-1)[None]


def sdc_tables(query_keys: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    """(nq, m, ksub) SDC tables: row query_keys[q, j] of the symmetric (ksub, ksub) table."""
    return table[query_keys]


def lut_scores(luts: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """(nq, n) float32 sums of table entries for keys (n, m): one gather per sub-quantizer."""
    nq, m, _ = luts.shape
    out = torch.zeros((nq, len(keys)), dtype=torch.float32, device=luts.device)
    cols = keys.T.contiguous()
    for j in range(m):
        out += luts[:, j, :].index_select(1, cols[j])
    return out


def merge_topk(
    best: tuple[torch.Tensor, torch.Tensor], scores: torch.Tensor, ids: torch.Tensor, k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Best k of the running (scores, ids) and a new block, sorted descending."""
    s = torch.cat((best[0], scores), dim=1)
    i = torch.cat((best[1], ids.expand(len(s), -1) if ids.dim() == 1 else ids), dim=1)
    top, pos = torch.topk(s, min(k, s.shape[1]), dim=1)
    return top, torch.gather(i, 1, pos)


def empty_topk(nq: int, k: int, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """k missing results per query: (-inf, -1)."""
    scores = torch.full((nq, k), -torch.inf, dtype=torch.float32, device=dev)
    return scores, torch.full((nq, k), -1, dtype=torch.int64, device=dev)


def chunk_rows(nq: int) -> int:
    """Codes per chunk so that a chunk's (nq, chunk) score block stays bounded."""
    return max(_MIN_CHUNK, _SCORES_PER_CHUNK // max(nq, 1))


def finish(best: tuple[torch.Tensor, torch.Tensor], k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to k columns, and mark non-finite scores as missing (id -1)."""
    scores, ids = best
    if scores.shape[1] < k:
        pad_s, pad_i = empty_topk(len(scores), k - scores.shape[1], scores.device)
        scores, ids = torch.cat((scores, pad_s), 1), torch.cat((ids, pad_i), 1)
    ids = torch.where(torch.isfinite(scores), ids, torch.full_like(ids, -1))
    return scores, ids


def lut_topk(
    luts: torch.Tensor,
    codes: torch.Tensor,
    nbits: int,
    k: int,
    ids: torch.Tensor | None = None,
    allowed: torch.Tensor | None = None,
    use_triton: bool | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k (scores, ids) of a table scan over all codes (n, code_size) uint8.

    `ids` (n,) int64 labels the codes (default: positions); `allowed` (n,) bool keeps only
    those codes, inside the scan. `use_triton` defaults to: on CUDA, with Triton, nbits 8 or 4.
    """
    nq, m, _ = luts.shape
    luts = luts.float()
    if use_triton is None:
        use_triton = luts.device.type == "cuda" and triton_scan.available(luts.device)
    use_triton = use_triton and nbits in (4, 8)
    best = empty_topk(nq, 0, luts.device)
    step = chunk_rows(nq) if use_triton else min(chunk_rows(nq), _GATHER_ROWS)
    for s in range(0, len(codes), step):
        e = min(s + step, len(codes))
        if use_triton:
            scores = triton_scan.lut_scores(luts, codes[s:e], nbits)
        else:
            scores = lut_scores(luts, unpack_keys(codes[s:e], m, nbits))
        if allowed is not None:
            scores.masked_fill_(~allowed[s:e], -torch.inf)
        labels = _labels(ids, s, e, luts.device)
        best = merge_topk(best, scores, labels, k)
    return finish(best, k)


def _labels(ids: torch.Tensor | None, s: int, e: int, dev: torch.device) -> torch.Tensor:
    if ids is None:
        return torch.arange(s, e, dtype=torch.int64, device=dev)
    return ids[s:e]


def fp16_ip_topk(
    xq: torch.Tensor, xb: torch.Tensor, k: int, ids: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exhaustive inner-product top-k of float32 queries over float16 vectors (n, d).

    On CUDA each chunk is one float16 GEMM (tensor cores); its shortlist of 2k + 16 per query is
    re-scored in float32 at the end, so the scores are those of the float16 rows exactly. On the
    CPU the GEMM runs in float32 (torch's CPU float16 GEMM is slow).
    """
    nq = len(xq)
    xq = xq.float()
    gemm_dtype = torch.float16 if xq.device.type == "cuda" else torch.float32
    q = xq.to(gemm_dtype)
    shortlist = 2 * k + 16
    best = empty_topk(nq, 0, xq.device)
    step = chunk_rows(nq)
    for s in range(0, len(xb), step):
        e = min(s + step, len(xb))
        scores = (q @ xb[s:e].to(gemm_dtype).T).float()
        positions = torch.arange(s, e, dtype=torch.int64, device=xq.device)
        best = merge_topk(best, scores, positions, shortlist)
    rows = best[1]
    exact = torch.einsum("qcd,qd->qc", xb[rows].float(), xq)
    top, pos = torch.topk(exact, min(k, exact.shape[1]), dim=1)
    found = torch.gather(rows, 1, pos)
    labels = found if ids is None else ids[found]
    return finish((top, labels), k)
