"""Exact Chamfer (MaxSim) scores: Chamfer(Q, P) = sum over q in Q of max over p in P of <q, p>.

Point clouds are concatenated token matrices with offsets (cloud i owns rows offsets[i] to
offsets[i + 1]). Two entry points:
- `chamfer_all` / `chamfer_topk`: brute force over every document, one torch matmul of a block
  of query tokens against a block of document tokens, a segmented max per document, then a
  segmented sum per query (the baseline and the ground truth);
- `chamfer_rerank`: exact scores of each query's candidates, their tokens gathered from a
  (memory-mapped, float16) token matrix.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels import dispatch
from kernels.topk import topk

_DOC_TOKENS = 1 << 16  # document tokens per block of the brute force
_QUERY_TOKENS = 1024  # query tokens per block of the brute force
_RERANK_ROWS = 1024  # candidate tokens per block of the re-rank (float32 block: 1.5 MB at 384-d)


def token_blocks(offsets: np.ndarray, budget: int) -> list[tuple[int, int]]:
    """Runs [start, end) of whole clouds holding about `budget` tokens each (at least one)."""
    n = len(offsets) - 1
    out, start = [], 0
    while start < n:
        end = int(np.searchsorted(offsets, offsets[start] + budget, side="right")) - 1
        end = min(max(end, start + 1), n)
        out.append((start, end))
        start = end
    return out


def segment_max(scores: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Max over each column segment: (rows, offsets[-1]) -> (rows, len(offsets) - 1)."""
    return np.maximum.reduceat(scores, offsets[:-1], axis=1)


def segment_sum_rows(x: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Sum over each row segment: (offsets[-1], cols) -> (len(offsets) - 1, cols)."""
    return np.add.reduceat(x, offsets[:-1], axis=0)


def chamfer_all(
    q_tokens: np.ndarray, q_offsets: np.ndarray, d_tokens: np.ndarray, d_offsets: np.ndarray
) -> np.ndarray:
    """(nq, n_docs) float32 Chamfer scores of every query against every document."""
    nq, nd = len(q_offsets) - 1, len(d_offsets) - 1
    out = np.empty((nq, nd), dtype=np.float32)
    for d0, d1 in token_blocks(d_offsets, _DOC_TOKENS):
        lo, hi = int(d_offsets[d0]), int(d_offsets[d1])
        docs = torch.from_numpy(np.ascontiguousarray(d_tokens[lo:hi], dtype=np.float32))
        doc_offsets = d_offsets[d0 : d1 + 1] - lo
        for q0, q1 in token_blocks(q_offsets, _QUERY_TOKENS):
            qlo, qhi = int(q_offsets[q0]), int(q_offsets[q1])
            queries = torch.from_numpy(np.ascontiguousarray(q_tokens[qlo:qhi], dtype=np.float32))
            best = segment_max((queries @ docs.T).numpy(), doc_offsets)
            out[q0:q1, d0:d1] = segment_sum_rows(best, q_offsets[q0 : q1 + 1] - qlo)
    return out


def chamfer_topk(
    q_tokens: np.ndarray,
    q_offsets: np.ndarray,
    d_tokens: np.ndarray,
    d_offsets: np.ndarray,
    k: int,
    query_batch: int = 64,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k (scores, positions) per query by brute force, queries in batches."""
    nq = len(q_offsets) - 1
    nd = len(d_offsets) - 1
    scores = np.empty((nq, k), dtype=np.float32)
    ids = np.empty((nq, k), dtype=np.int64)
    positions = np.arange(nd, dtype=np.int64)
    for s in range(0, nq, query_batch):
        e = min(s + query_batch, nq)
        lo, hi = int(q_offsets[s]), int(q_offsets[e])
        block = chamfer_all(q_tokens[lo:hi], q_offsets[s : e + 1] - lo, d_tokens, d_offsets)
        scores[s:e], ids[s:e] = topk(block, np.broadcast_to(positions, block.shape), k)
    return scores, ids


def token_rows(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows of the clouds [starts[i], starts[i] + lengths[i]) in order, and their offsets."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    rows = np.repeat(starts - offsets[:-1], lengths) + np.arange(offsets[-1])
    return rows, offsets


def chamfer_rerank(
    q_tokens: np.ndarray,
    q_offsets: np.ndarray,
    cand_ids: np.ndarray,
    cand_starts: np.ndarray,
    cand_lengths: np.ndarray,
    tokens: np.ndarray,
    k: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of each query's candidates by exact Chamfer score.

    cand_starts/cand_lengths (nq, c) locate each candidate's rows in `tokens` (float16 or
    float32, typically memory-mapped); a candidate with length 0 (unknown or removed id, or
    id -1) is dropped. Runs on the torch path when `kernels.dispatch` chooses it.
    """
    if dispatch.backend() == "torch":
        from kernels import torch_chamfer

        return torch_chamfer.chamfer_rerank(
            q_tokens, q_offsets, cand_ids, cand_starts, cand_lengths, tokens, k, dispatch.device()
        )
    nq, c = cand_ids.shape
    scores = np.full((nq, c), -np.inf, dtype=np.float32)
    if nq == 0 or c == 0:
        return topk(scores, cand_ids, k)
    queries = torch.from_numpy(np.ascontiguousarray(q_tokens, dtype=np.float32))
    lengths = np.where(cand_lengths > 0, cand_lengths, 0)
    store = np.asarray(tokens)  # a plain view: np.memmap indexing is slower
    buffer = torch.empty((_RERANK_ROWS + int(lengths.max()), store.shape[1]), dtype=torch.float32)
    for i in range(nq):
        keep = np.flatnonzero(lengths[i])
        if len(keep):
            query = queries[q_offsets[i] : q_offsets[i + 1]]
            rows, offsets = token_rows(cand_starts[i, keep], lengths[i, keep])
            scores[i, keep] = _chamfer_blocks(query, store, rows, offsets, buffer)
    return topk(scores, cand_ids, k)


def _chamfer_blocks(
    query: torch.Tensor,
    store: np.ndarray,
    rows: np.ndarray,
    offsets: np.ndarray,
    buffer: torch.Tensor,
) -> np.ndarray:
    """Chamfer scores of one query (q tokens, dim) against the clouds at `rows`, about
    _RERANK_ROWS tokens at a time: gather in the stored dtype, widen into a reused float32
    buffer, one matmul, segmented max, sum. Blocks stay in cache (the re-rank is memory-bound),
    and the matmul is query @ block.T: with a handful of query tokens, block @ query.T hits a
    GEMM path several times slower."""
    out = np.empty(len(offsets) - 1, dtype=np.float32)
    for a, b in token_blocks(offsets, _RERANK_ROWS):
        lo, hi = int(offsets[a]), int(offsets[b])
        block = buffer[: hi - lo]
        block.copy_(torch.from_numpy(store[rows[lo:hi]]))
        sims = (query @ block.T).numpy()  # (query tokens, tokens)
        out[a:b] = segment_max(sims, offsets[a : b + 1] - lo).sum(0)
    return out
