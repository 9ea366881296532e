"""Shared seeded fixtures: synthetic clustered data with an exact oracle."""

from __future__ import annotations

import faiss
import numpy as np
import pytest
from oracles import clustered, exact_topk, recall

__all__ = ["clustered", "data", "exact_topk", "recall"]

faiss.omp_set_num_threads(1)


@pytest.fixture(scope="session")
def data() -> tuple[np.ndarray, np.ndarray]:
    """(xb, xq): 4,000 base and 100 query vectors, 32-d."""
    return clustered(4000, 32, seed=1), clustered(100, 32, seed=2)
