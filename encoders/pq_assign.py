"""Score-aware (anisotropic) assignment of PQ codes, after ScaNN (Guo et al., 2020).

For inner-product search the error along the data point matters more than the error across it:
the loss of a reconstruction x~ of a target t is ||r||^2 + (eta - 1) <r, u>^2 with r = t - x~ and
u the unit direction of the data point. eta = 1 is plain nearest-centroid PQ; eta > 1 spends
the code on the parallel error. Codes start from nearest centroid and are improved by
coordinate descent, one sub-space at a time, every candidate centroid scored exactly.
"""

from __future__ import annotations

import numpy as np
import torch

_CHUNK = 4096  # rows per block: the (rows, 2**nbits) score matrices stay in cache


def anisotropic_codes(
    target: np.ndarray,
    direction: np.ndarray,
    books: np.ndarray,
    codes: np.ndarray,
    eta: float,
    passes: int,
) -> np.ndarray:
    """Improve nearest-centroid `codes` (n, m) of `target` (n, d) under the anisotropic loss.

    `direction` (n, d) is the data point whose parallel error is weighted by eta; for IVF
    residual codes the target is the residual while the direction is the full vector.
    """
    out = np.array(codes, dtype=np.int64, copy=True)
    if eta == 1.0 or passes == 0 or len(target) == 0:
        return out
    target = np.array(target, dtype=np.float32)  # writable copies: torch wraps them
    direction = np.array(direction, dtype=np.float32)
    c = torch.from_numpy(np.ascontiguousarray(books, dtype=np.float32))
    for s in range(0, len(target), _CHUNK):
        sl = slice(s, s + _CHUNK)
        out[sl] = _descend(
            torch.from_numpy(np.ascontiguousarray(target[sl], dtype=np.float32)),
            torch.from_numpy(np.ascontiguousarray(direction[sl], dtype=np.float32)),
            c,
            torch.from_numpy(out[sl]),
            eta,
            passes,
        ).numpy()
    return out


def _descend(
    t: torch.Tensor, x: torch.Tensor, c: torch.Tensor, codes: torch.Tensor, eta: float, passes: int
) -> torch.Tensor:
    m, _, dsub = c.shape
    n = len(t)
    u = x / x.norm(dim=1, keepdim=True).clamp(min=1e-12)
    recon = torch.gather(c, 1, codes.T.unsqueeze(-1).expand(m, n, dsub))  # (m, n, dsub)
    r = t - recon.permute(1, 0, 2).reshape(n, m * dsub)
    ru = (r * u).sum(1, keepdim=True)  # <r, u>, kept up to date
    c_sq = (c * c).sum(-1)  # (m, k)
    weight = eta - 1.0
    for _ in range(passes):
        for j in range(m):
            sl = slice(j * dsub, (j + 1) * dsub)
            base = r[:, sl] + c[j][codes[:, j]]  # residual of this sub-space without its code
            u_j = u[:, sl]
            par = ru - (r[:, sl] * u_j).sum(1, keepdim=True) + (base * u_j).sum(1, keepdim=True)
            # loss(code) = ||base - c||^2 + w (par - <c, u_j>)^2, up to terms without c
            loss = c_sq[j] - 2.0 * (base @ c[j].T) + weight * (par - u_j @ c[j].T).square()
            best = loss.argmin(1)
            codes[:, j] = best
            new = base - c[j][best]
            ru += ((new - r[:, sl]) * u_j).sum(1, keepdim=True)
            r[:, sl] = new
    return codes
