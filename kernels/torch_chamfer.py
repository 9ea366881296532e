"""Exact Chamfer re-rank in torch: the candidates' tokens gathered into a padded block
(queries, candidates, max tokens, dim), moved to the device once, one batched matmul per query,
a masked max over each candidate's tokens and a sum over the query's tokens.

Same inputs and results as `kernels.chamfer.chamfer_rerank` (the CPU path); the token matrix may
also be a tensor already on the device, so repeated re-ranks skip the host gather and copy.
"""

from __future__ import annotations

import numpy as np
import torch

from kernels.dispatch import to_device, to_numpy
from kernels.topk import topk

_BLOCK_ELEMENTS = 1 << 25  # bound on queries x candidates x tokens x dim of one gathered block


def padded_rows(starts: np.ndarray, lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows (..., L) of each cloud padded to the longest one L, and the mask of real rows."""
    width = max(int(lengths.max(initial=0)), 1)
    steps = np.arange(width)
    mask = steps < lengths[..., None]
    rows = np.where(mask, starts[..., None] + steps, np.maximum(starts, 0)[..., None])
    return rows, mask


def gather_tokens(
    tokens: np.ndarray | torch.Tensor, rows: np.ndarray, dev: torch.device
) -> torch.Tensor:
    """float32 tokens[rows] on `dev`: gathered on the host (then one copy) or on the device."""
    if isinstance(tokens, torch.Tensor):
        flat = torch.from_numpy(rows.ravel()).to(tokens.device)
        block = tokens.index_select(0, flat)
    else:
        block = to_device(np.asarray(tokens)[rows.ravel()], dev)
    return block.to(device=dev, dtype=torch.float32).reshape(*rows.shape, -1)


def chamfer_block(query: torch.Tensor, cands: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(c,) Chamfer scores of one query (q, d) against candidates (c, L, d) with mask (c, L)."""
    c, width, dim = cands.shape
    sims = (cands.reshape(c * width, dim) @ query.T).reshape(c, width, -1)
    sims = sims.masked_fill(~mask[..., None], -torch.inf)
    return sims.amax(dim=1).sum(dim=1)


def chamfer_scores(
    q_tokens: np.ndarray,
    q_offsets: np.ndarray,
    cand_starts: np.ndarray,
    cand_lengths: np.ndarray,
    tokens: np.ndarray | torch.Tensor,
    dev: torch.device,
) -> torch.Tensor:
    """(nq, c) float32 Chamfer scores on `dev`; -inf where a candidate has no tokens."""
    nq, c = cand_starts.shape
    lengths = np.maximum(cand_lengths, 0)
    out = torch.full((nq, c), -torch.inf, dtype=torch.float32, device=dev)
    if nq == 0 or c == 0 or not lengths.any():  # nothing to gather (the store may be empty)
        return out
    queries = to_device(np.asarray(q_tokens, dtype=np.float32), dev)
    per_query = c * max(int(lengths.max()), 1) * queries.shape[1]
    step = max(1, _BLOCK_ELEMENTS // per_query)
    for s in range(0, nq, step):
        rows, mask = padded_rows(cand_starts[s : s + step], lengths[s : s + step])
        block = gather_tokens(tokens, rows, dev)
        keep = torch.from_numpy(mask).to(dev)
        for i in range(len(rows)):
            query = queries[int(q_offsets[s + i]) : int(q_offsets[s + i + 1])]
            out[s + i] = chamfer_block(query, block[i], keep[i])
    out.masked_fill_(torch.from_numpy(lengths == 0).to(dev), -torch.inf)
    return out


def chamfer_rerank(
    q_tokens: np.ndarray,
    q_offsets: np.ndarray,
    cand_ids: np.ndarray,
    cand_starts: np.ndarray,
    cand_lengths: np.ndarray,
    tokens: np.ndarray | torch.Tensor,
    k: int,
    dev: torch.device,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) of each query's candidates by exact Chamfer score, on `dev`."""
    scores = chamfer_scores(q_tokens, q_offsets, cand_starts, cand_lengths, tokens, dev)
    return topk(to_numpy(scores), cand_ids, k)
