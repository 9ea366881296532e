"""GPU detection, done once: FAISS GPUs (faiss-gpu builds) and torch CUDA, same code path
with zero."""

from __future__ import annotations

import functools


@functools.cache
def faiss_gpus() -> int:
    """Number of GPUs FAISS can use (0 with faiss-cpu)."""
    import faiss

    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get is not None else 0


@functools.cache
def torch_device() -> str:
    """'cuda' when torch sees a GPU, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def has_gpu() -> bool:
    """True when any GPU is usable by FAISS or torch."""
    return faiss_gpus() > 0 or torch_device() == "cuda"
