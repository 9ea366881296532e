"""Training of the BEBR residual binarizer with torch on the collection's own vectors.

The model is the one `encoders.binary.binarize` runs in numpy: z = x P (P init identity), then for
each step t, b_t = sign(r + mlp_t(r)) with r the residual z - sum_{t'<t} alpha_t' b_t', through a
straight-through estimator. mlp_t's last layer starts at zero and the scales at their closed form,
so training starts from the training-free binarizer.

Objective (embedding-to-embedding, listwise distillation): batches are anchors of the sample plus
a few of their exact nearest neighbours, so every row has true neighbours in the batch. Teacher
= softmax_c(<x_a, x_c> / tau); student = softmax_c(s * <z^_a, z^_c>) with z^ the reconstructions
of both sides (the query is binarized too, as SDC search does) and s a learned logit scale; plus
a term keeping <z^_a, z^_c> close to <x_a, x_c>. All torch <-> numpy moves of this encoder live
here; training is single-threaded, seeded and deterministic per spec.seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any
from contextlib import contextmanager

import faiss
import numpy as np
import torch
from torch import nn

from encoders.spec import BinarySpec

_KNN_CHUNK = 4096


class SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1 forward; straight-through backward, clipped to |x| <= width
    (the gradient of width * hardtanh(x / width), scaled to the sign's +-1 range)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        ctx.save_for_backward(x, width)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:  # type: ignore[override]
        x, width = ctx.saved_tensors
        return grad * (x.abs() <= width).to(grad.dtype) / width, None


class ResidualBinarizer(nn.Module):
    """Linear map, then u residual-MLP sign steps with one learned scale per step."""

    def __init__(
        self, dim: int, d_pad: int, scales: np.ndarray, hidden: int, unit: float, clip: float = 1.0
    ) -> None:
        super().__init__()
        steps = len(scales)
        self.unit = unit  # typical |z| entry: MLPs see r / unit, so their layers are O(1)
        self.projection = nn.Parameter(torch.eye(dim, d_pad))
        self.scales = nn.Parameter(torch.tensor(scales, dtype=torch.float32))
        std = math.sqrt(2.0 / d_pad)
        self.w1 = nn.Parameter(torch.randn(steps, d_pad, hidden) * std)
        self.b1 = nn.Parameter(torch.zeros(steps, hidden))
        self.w2 = nn.Parameter(torch.zeros(steps, hidden, d_pad))
        self.b2 = nn.Parameter(torch.zeros(steps, d_pad))
        self.log_logit_scale = nn.Parameter(torch.zeros(()))
        self.register_buffer("widths", torch.tensor(scales, dtype=torch.float32) * clip)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, dim) -> (n, d_pad) STE reconstructions sum_t alpha_t b_t."""
        z = x @ self.projection
        recon = torch.zeros_like(z)
        for t in range(len(self.scales)):
            r = z - recon
            h = torch.relu((r / self.unit) @ self.w1[t] + self.b1[t])
            pre = r + self.unit * (h @ self.w2[t] + self.b2[t])
            recon = recon + self.scales[t] * SignSTE.apply(pre, self.widths[t])
        return recon

    def export(self) -> dict[str, np.ndarray]:
        """Arrays for `encoders.binary.BinaryEncoder.load_state` (unit folded into the MLPs)."""
        with torch.no_grad():
            arrays = {
                "projection": self.projection,
                "scales": self.scales,
                "w1": self.w1 / self.unit,
                "b1": self.b1,
                "w2": self.w2 * self.unit,
                "b2": self.b2 * self.unit,
            }
            return {k: np.ascontiguousarray(v.numpy(), dtype=np.float32) for k, v in arrays.items()}


@contextmanager
def deterministic_torch(seed: int, threads: int = 1) -> Iterator[torch.Generator]:
    """Seeded, deterministic, fixed-thread torch; global settings restored on exit."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def exact_neighbors(x: np.ndarray, anchors: np.ndarray, k: int) -> np.ndarray:
    """(len(anchors), k) ids of each anchor's k nearest rows of x by inner product, self excluded."""
    index = faiss.IndexFlatIP(x.shape[1])
    index.add(x)
    out = np.empty((len(anchors), k), dtype=np.int64)
    for s in range(0, len(anchors), _KNN_CHUNK):
        rows = anchors[s : s + _KNN_CHUNK]
        _, ids = index.search(x[rows], k + 1)
        out[s : s + _KNN_CHUNK] = _drop_self(ids, rows, k)
    return out


def _drop_self(ids: np.ndarray, rows: np.ndarray, k: int) -> np.ndarray:
    """Remove each row's own id from its neighbour list (keep the first k others)."""
    keep = ids != rows[:, None]
    out = np.empty((len(ids), k), dtype=np.int64)
    for i in range(len(ids)):
        out[i] = ids[i][keep[i]][:k]
    return out


def batch_rows(
    anchors: np.ndarray, neighbors: np.ndarray, group: int, rng: np.random.Generator
) -> np.ndarray:
    """Row ids of one batch: each anchor followed by `group - 1` of its neighbours."""
    pool = neighbors.shape[1]
    picks = np.argsort(rng.random((len(anchors), pool)), axis=1)[:, : group - 1]
    chosen = np.take_along_axis(neighbors, picks, axis=1)
    return np.concatenate([anchors[:, None], chosen], axis=1).ravel()


def distillation_loss(
    x: torch.Tensor,
    recon: torch.Tensor,
    scales: torch.Tensor,
    log_scale: torch.Tensor,
    tau: float,
    mse_weight: float,
) -> torch.Tensor:
    """KL(teacher || student) over the batch (self excluded) + mse_weight * inner-product MSE.

    The student's logits are <z^_a, z^_c> / (d * sum alpha_t^2), a cosine-like similarity that a
    common factor on the scales leaves unchanged (the logit scale alone sets its temperature).
    """
    n, d = recon.shape
    eye = torch.eye(n, dtype=torch.bool)
    true_ip = x @ x.T
    est_ip = recon @ recon.T
    cosine = est_ip / (d * (scales**2).sum())
    teacher = torch.softmax((true_ip / tau).masked_fill(eye, -math.inf), dim=1)
    student = torch.log_softmax((cosine * log_scale.exp()).masked_fill(eye, -math.inf), dim=1)
    kl = (teacher * (torch.log(teacher.clamp_min(1e-30)) - student)).masked_fill(eye, 0.0)
    mse = ((est_ip - true_ip) ** 2).masked_fill(eye, 0.0).sum() / (n * (n - 1))
    return kl.sum(1).mean() + mse_weight * mse


def initial_state(z: np.ndarray, steps: int) -> np.ndarray:
    """Closed-form scales on the identity transform (the training-free start)."""
    from encoders.binary import closed_form_scales

    return closed_form_scales(z, steps)


def train_binarizer(x: np.ndarray, d_pad: int, spec: BinarySpec) -> dict[str, np.ndarray]:
    """Fit the binarizer on x (n, dim) and return its arrays (projection, scales, MLPs)."""
    n, dim = x.shape
    rng = np.random.default_rng(spec.seed)
    z0 = np.ascontiguousarray(x @ np.eye(dim, d_pad, dtype=np.float32))
    scales = initial_state(z0[:, :dim], spec.bits)
    group = min(spec.group, n)
    k = min(spec.neighbors, n - 1)
    anchors_per_batch = max(1, spec.batch_size // group)
    n_anchors = min(n, spec.train_steps * anchors_per_batch)
    anchors = np.sort(rng.choice(n, size=n_anchors, replace=False))
    neighbors = exact_neighbors(x, anchors, max(k, group - 1))
    with deterministic_torch(spec.seed) as gen:
        torch.manual_seed(int(gen.initial_seed()))
        unit = float(np.sqrt((z0[:, :dim] ** 2).mean()))
        model = ResidualBinarizer(dim, d_pad, scales, spec.hidden, unit)
        model.log_logit_scale.data.fill_(-math.log(spec.temperature))
        _optimize(model, torch.from_numpy(x), anchors, neighbors, group, spec, rng)
        return model.export()


def _optimize(
    model: ResidualBinarizer,
    x: torch.Tensor,
    anchors: np.ndarray,
    neighbors: np.ndarray,
    group: int,
    spec: BinarySpec,
    rng: np.random.Generator,
) -> None:
    """Adam with cosine decay over spec.train_steps batches of anchors and neighbours."""
    opt = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.train_steps)
    per_batch = max(1, spec.batch_size // group)
    order = rng.permutation(len(anchors))
    for step in range(spec.train_steps):
        pos = (step * per_batch) % len(anchors)
        pick = order[np.arange(pos, pos + per_batch) % len(anchors)]
        rows = batch_rows(anchors[pick], neighbors[pick], group, rng)
        xb = x[torch.from_numpy(rows)]
        loss = distillation_loss(
            xb, model(xb), model.scales, model.log_logit_scale, spec.temperature, spec.mse_weight
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
