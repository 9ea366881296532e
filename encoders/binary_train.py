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
from contextlib import contextmanager
from typing import Any

import faiss
import numpy as np
import torch
from torch import nn

from encoders.binary import binarize, closed_form_fit, step_values
from encoders.pq_train import procrustes
from encoders.spec import BinarySpec

_KNN_CHUNK = 4096
_FAR = 1e30  # a threshold beyond every input
_ROTATION_ROWS = 8192
_VALIDATION_ROWS = 20_000


class SignSTE(torch.autograd.Function):
    """sign with sign(0) = +1 forward; straight-through backward, clipped to |x| <= width
    (the gradient of width * hardtanh(x / width), scaled to the sign's +-1 range)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, width: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, width)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        x, width = ctx.saved_tensors
        return grad * (x.abs() <= width).to(grad.dtype) / width, None


class ResidualBinarizer(nn.Module):
    """Linear map, then u residual-MLP sign steps with one learned scale per step."""

    def __init__(
        self, init: dict[str, np.ndarray], hidden: int, unit: float, generator: torch.Generator
    ) -> None:
        super().__init__()
        scales = init["scales"]
        steps, d_pad = len(scales), init["projection"].shape[1]
        self.unit = unit  # typical |z| entry: MLPs see r / unit, so their layers are O(1)
        self.counts = init.get("counts")
        self.projection = nn.Parameter(torch.from_numpy(init["projection"].copy()))
        self.scales = nn.Parameter(torch.from_numpy(scales.copy()))
        std = math.sqrt(2.0 / d_pad)
        self.w1 = nn.Parameter(torch.randn(steps, d_pad, hidden, generator=generator) * std)
        self.b1 = nn.Parameter(torch.zeros(steps, hidden))
        self.w2 = nn.Parameter(torch.zeros(steps, hidden, d_pad))
        self.b2 = nn.Parameter(torch.zeros(steps, d_pad))
        self.log_logit_scale = nn.Parameter(torch.zeros(()))
        self.widths = torch.from_numpy(scales.copy())  # STE window of each step

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, dim) -> (n, d_pad) STE reconstructions sum_t alpha_t b_t."""
        z = x @ self.projection
        recon = torch.zeros_like(z)
        first = torch.ones_like(z)
        group = torch.zeros(z.shape, dtype=torch.int64)
        for t in range(len(self.scales)):
            r = z - recon
            h = torch.relu((r / self.unit) @ self.w1[t] + self.b1[t])
            pre = r + self.unit * (h @ self.w2[t] + self.b2[t])
            if t > 0 and self.counts is not None:
                tau = group_thresholds(
                    (first * pre).detach(), group, self.counts[t, : 1 << (t - 1)]
                )
                pre = pre - first * tau
            b = SignSTE.apply(pre, self.widths[t])
            if t == 0:
                first = b.detach()
            elif self.counts is not None:
                group = group | ((b.detach() == first).to(torch.int64) << (t - 1))
            recon = recon + self.scales[t] * b
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
            out = {k: np.ascontiguousarray(v.numpy(), dtype=np.float32) for k, v in arrays.items()}
        if self.counts is not None:
            out["counts"] = self.counts
        return out


def group_thresholds(push: torch.Tensor, group: torch.Tensor, counts: np.ndarray) -> torch.Tensor:
    """(n, d) per-dim threshold: in each row and group g, midway between the counts[g]-th and
    the next largest push of the group (so exactly counts[g] dims of g lie above it)."""
    tau = torch.zeros_like(push)
    for g, k in enumerate(counts.tolist()):
        mine = group == g
        size = int(mine[0].sum())
        if k <= 0:
            level = torch.full((len(push),), _FAR)
        elif k >= size:
            level = torch.full((len(push),), -_FAR)
        else:
            top = push.masked_fill(~mine, -math.inf).topk(k + 1, dim=1).values
            level = 0.5 * (top[:, k - 1] + top[:, k])
        tau = torch.where(mine, level[:, None], tau)
    return tau


@contextmanager
def deterministic_torch(seed: int, threads: int = 1) -> Iterator[torch.Generator]:
    """A seeded generator under deterministic, fixed-thread torch; settings restored on exit."""
    old_threads = torch.get_num_threads()
    old_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    try:
        yield torch.Generator().manual_seed(seed)
    finally:
        torch.set_num_threads(old_threads)
        torch.use_deterministic_algorithms(old_det)


def exact_neighbors(x: np.ndarray, anchors: np.ndarray, k: int) -> np.ndarray:
    """(len(anchors), k) ids of each anchor's k nearest rows of x by inner product, self
    excluded."""
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
    same: torch.Tensor,
    log_scale: torch.Tensor,
    tau: float,
    mse_weight: float,
) -> torch.Tensor:
    """KL(teacher || student) over the batch + mse_weight * inner-product MSE; pairs of the same
    vector (`same`, the diagonal and repeated rows) are left out of both.

    The student's logits are <z^_a, z^_c> over the batch's mean squared norm of z^: a
    cosine-like similarity that the overall size of the scales leaves unchanged, so the
    learned logit scale alone sets the student's temperature.
    """
    eye = same
    true_ip = x @ x.T
    est_ip = recon @ recon.T
    cosine = est_ip / est_ip.diagonal().mean()
    teacher = torch.softmax((true_ip / tau).masked_fill(eye, -math.inf), dim=1)
    student = torch.log_softmax((cosine * log_scale.exp()).masked_fill(eye, -math.inf), dim=1)
    kl = (teacher * (torch.log(teacher.clamp_min(1e-30)) - student)).masked_fill(eye, 0.0)
    mse = ((est_ip - true_ip) ** 2).masked_fill(eye, 0.0).sum() / (~eye).sum()
    return kl.sum(1).mean() + mse_weight * mse


class Validator:
    """SDC recall@10 of held-out rows of the sample among the sample (self excluded): the model
    selection metric of training (the best rotation iterate and SGD checkpoint are kept)."""

    def __init__(self, x: np.ndarray, spec: BinarySpec, rng: np.random.Generator) -> None:
        self.spec = spec
        rows = np.sort(rng.choice(len(x), size=min(len(x), _VALIDATION_ROWS), replace=False))
        self.base = x[rows]
        n_queries = max(min(spec.validation, len(rows) - 11), 0)
        self.queries = np.sort(rng.choice(len(rows), size=n_queries, replace=False))
        self.held_out = rows[self.queries]  # rows of x that training must not use as anchors
        self.truth = exact_neighbors(self.base, self.queries, 10) if len(self.queries) else None

    def recall(self, state: dict[str, np.ndarray]) -> float:
        """Recall@10 of the binarizer `state` (1.0 when validation is disabled)."""
        if self.truth is None:
            return 1.0
        from encoders.binary import BinaryEncoder

        enc = BinaryEncoder(self.spec, self.base.shape[1])
        enc.load_state(state)
        enc.is_trained = True
        recon = enc.decode(enc.encode(self.base))
        index = faiss.IndexFlatIP(recon.shape[1])
        index.add(recon)
        _, ids = index.search(recon[self.queries], 11)
        found = _drop_self(ids, self.queries, 10)
        hits = sum(len(np.intersect1d(f, t)) for f, t in zip(found, self.truth, strict=True))
        return hits / self.truth.size


def learn_rotation(
    x: np.ndarray, init: dict[str, np.ndarray], spec: BinarySpec, validator: Validator
) -> dict[str, np.ndarray]:
    """The state with an orthogonal map learned by alternating minimisation (as ITQ and OPQ do):
    code z = x P with closed-form scales, then P <- the rotation taking x closest to the
    reconstructions (Procrustes). The iterate that validates best is kept (identity included)."""
    x = x[:: -(-len(x) // _ROTATION_ROWS)]
    pad = init["projection"]
    constant_weight = "counts" in init
    best, best_recall = pad, validator.recall(init)
    projection = pad
    for step in range(spec.rotation_iterations + 1):
        z = np.ascontiguousarray(x @ projection)
        scales, counts = closed_form_fit(z, spec.bits, constant_weight, rounds=1)
        if step > 0:
            state = {"projection": projection, "scales": scales}
            score = validator.recall(state if counts is None else {**state, "counts": counts})
            if score >= best_recall:
                best, best_recall = projection, score
        if step < spec.rotation_iterations:
            recon = step_values(scales)[binarize(z, scales, None, counts)]
            projection = np.ascontiguousarray(pad @ procrustes(x @ pad, recon))
    if best is pad:
        return init
    scales, counts = closed_form_fit(x @ best, spec.bits, constant_weight)
    state = {"projection": best, "scales": scales}
    return state if counts is None else {**state, "counts": counts}


def train_binarizer(
    x: np.ndarray, init: dict[str, np.ndarray], spec: BinarySpec
) -> dict[str, np.ndarray]:
    """Fit the binarizer on x (n, dim) from the training-free `init` state: learn the rotation,
    then the MLPs, scales and map by distillation; return its arrays."""
    rng = np.random.default_rng(spec.seed)
    validator = Validator(x, spec, rng)
    init = learn_rotation(x, init, spec, validator)
    with deterministic_torch(spec.seed) as generator:
        unit = float(np.sqrt(np.mean((x @ init["projection"]) ** 2)))
        model = ResidualBinarizer(init, spec.hidden, unit, generator)
        model.log_logit_scale.data.fill_(-math.log(spec.temperature))
        best = model.export()
        if spec.train_steps > 0:
            best = _optimize(model, x, spec, validator, rng)
        return best


def _optimize(
    model: ResidualBinarizer,
    x: np.ndarray,
    spec: BinarySpec,
    validator: Validator,
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Adam with cosine decay over spec.train_steps batches of anchors and their neighbours;
    returns the checkpoint (every spec.eval_every steps, the start included) that validates best."""
    n = len(x)
    group = min(spec.group, n)
    pool = np.setdiff1d(np.arange(n), validator.held_out)
    anchors = np.sort(rng.choice(pool, size=min(len(pool), spec.anchors), replace=False))
    neighbors = exact_neighbors(x, anchors, min(max(spec.neighbors, group - 1), n - 1))
    opt = torch.optim.Adam(model.parameters(), lr=spec.learning_rate)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=spec.train_steps)
    per_batch = max(1, spec.batch_size // group)
    order = rng.permutation(len(anchors))
    data = torch.from_numpy(x)
    best = model.export()
    best_recall = validator.recall(best)
    for step in range(spec.train_steps):
        pick = order[np.arange(step * per_batch, (step + 1) * per_batch) % len(anchors)]
        ids = torch.from_numpy(batch_rows(anchors[pick], neighbors[pick], group, rng))
        xb = data[ids]
        same = ids[:, None] == ids[None, :]
        loss = distillation_loss(
            xb, model(xb), same, model.log_logit_scale, spec.temperature, spec.mse_weight
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if (step + 1) % spec.eval_every == 0 or step + 1 == spec.train_steps:
            state = model.export()
            score = validator.recall(state)
            if score >= best_recall:
                best, best_recall = state, score
    return best
