"""Which implementation runs the hot kernels, and every numpy <-> torch (CPU <-> GPU) move.

`backend()` is 'torch' when CUDA is present and 'cpu' (numpy/FAISS) otherwise. The environment
variable PITH_KERNELS=torch|cpu|auto overrides that choice, read at each call (not at import),
so tests can run the torch path on torch's CPU backend:

    PITH_KERNELS=torch python -m pytest -q tests/index   # the torch path, on the CPU
"""

from __future__ import annotations

import os

import numpy as np
import torch

from core.device import torch_device
from core.errors import InvalidSpec

ENV_VAR = "PITH_KERNELS"
CHOICES = ("auto", "torch", "cpu")


def requested() -> str:
    """The choice in PITH_KERNELS ('auto' when unset or empty)."""
    choice = os.environ.get(ENV_VAR, "").strip().lower() or "auto"
    if choice not in CHOICES:
        raise InvalidSpec(f"{ENV_VAR} must be one of {', '.join(CHOICES)}, got {choice!r}")
    return choice


def backend() -> str:
    """'torch' or 'cpu': the implementation the dispatching kernels call now."""
    choice = requested()
    if choice == "auto":
        return "torch" if torch_device() == "cuda" else "cpu"
    return choice


def device() -> torch.device:
    """The device of the torch path: CUDA when torch sees a GPU, else torch's CPU backend."""
    return torch.device(torch_device())


def to_device(
    x: np.ndarray | torch.Tensor, dev: torch.device, dtype: torch.dtype | None = None
) -> torch.Tensor:
    """A tensor on `dev` (copied from host memory when needed; no copy when already there)."""
    t = x if isinstance(x, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(x))
    return t.to(device=dev, dtype=dtype or t.dtype, non_blocking=False)


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A host numpy array of a tensor (synchronises with the device)."""
    return t.detach().to("cpu").numpy()
