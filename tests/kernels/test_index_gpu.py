"""index/gpu.py: torch scans of a flat index's codes answer like the FAISS index (ids tie-aware,
scores within float tolerance, filters inside the scan); the CPU backend and a FAISS without GPU
support fall back cleanly."""

from __future__ import annotations

import faiss
import numpy as np
import pytest

from encoders.factory import build_encoder
from encoders.spec import BinarySpec, Float16Spec, Float32Spec, PQSpec
from index import gpu
from index.factory import index_for
from index.filters import search_parameters
from index.spec import FlatSpec
from kernels import dispatch

DIM = 32
ENCODERS = {
    "pq8": PQSpec(m=8, nbits=8, opq=False, iterations=4, anisotropic_eta=1.0),
    "pq4": PQSpec(m=16, nbits=4, opq=False, iterations=4, anisotropic_eta=1.0),
    "binary2": BinarySpec(bits=2, learned=False),
    "binary3": BinarySpec(bits=3, learned=False),  # 9-bit keys: the generic unpack
    "float16": Float16Spec(),
    "float32": Float32Spec(),
}


@pytest.fixture(scope="module")
def vectors() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((1200, DIM)).astype(np.float32)
    return x, rng.standard_normal((5, DIM)).astype(np.float32), np.arange(1200) * 7 + 3


_BUILT: dict[tuple[str, str], object] = {}
_ENCODERS: dict[str, object] = {}


def flat(name: str, metric: str, vectors):
    """A trained flat index holding the vectors (built once per module; tests only read it)."""
    if (name, metric) not in _BUILT:
        x, _, ids = vectors
        if name not in _ENCODERS:  # trained once, shared by both metrics
            _ENCODERS[name] = build_encoder(ENCODERS[name], DIM)
            if not _ENCODERS[name].is_trained:
                _ENCODERS[name].fit(x)
        index = index_for(_ENCODERS[name], FlatSpec(metric=metric))
        index.add(ids, x)
        _BUILT[name, metric] = index
    return _BUILT[name, metric]


def faiss_answer(index, xq: np.ndarray, k: int, allowed: np.ndarray | None):
    float_codes = isinstance(index.encoder.spec, Float16Spec | Float32Spec)
    base = faiss.SearchParameters() if float_codes else faiss.SearchParametersIVF()
    params = search_parameters(base, allowed)
    return index.faiss.search(index.encoder.query_view(xq), k, params=params), params


def assert_same_answer(want, got, metric: str) -> None:
    """Same scores (within float tolerance); ids equal wherever the score is not tied (with
    another result, or with the k-th score, which a result left out may share)."""
    (d0, i0), (d1, i1) = want, got
    np.testing.assert_allclose(d1, d0, rtol=1e-5, atol=1e-4)
    for row0, row1, dist in zip(i0, i1, d0, strict=True):
        tied = np.isclose(dist[:, None], dist[None, :], rtol=1e-5, atol=1e-4).sum(1) > 1
        tied |= np.isclose(dist, dist[-1], rtol=1e-5, atol=1e-4)  # may tie with the (k+1)-th
        assert (row0[~tied] == row1[~tied]).all()
        assert len(set(row1.tolist())) == len(row1)


@pytest.mark.parametrize("name", list(ENCODERS))
@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_torch_searcher_answers_like_faiss(monkeypatch, vectors, name: str, metric: str) -> None:
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    index = flat(name, metric, vectors)
    searcher = gpu.gpu_searcher(index.faiss, index.encoder, metric)
    if name.startswith("float") and metric == "l2":
        assert searcher is None  # the float scan is inner product only: FAISS answers
        return
    assert searcher is not None
    _, xq, ids = vectors
    allowed = ids[np.random.default_rng(1).choice(len(ids), 40, replace=False)]
    for filt in (None, allowed):
        want, params = faiss_answer(index, xq, 20, filt)
        got = searcher.search(index.encoder.query_view(xq), 20, filt, params)
        assert_same_answer(want, got, metric)
        if filt is not None:
            assert np.isin(got[1], allowed).all()


def test_cpu_backend_keeps_faiss(monkeypatch, vectors) -> None:
    monkeypatch.setenv(dispatch.ENV_VAR, "cpu")
    index = flat("pq8", "ip", vectors)
    assert gpu.gpu_searcher(index.faiss, index.encoder, "ip") is None


def test_faiss_gpu_failure_falls_back_to_torch(monkeypatch, vectors) -> None:
    """With a FAISS that reports GPUs but cannot copy this index, the torch scan answers."""
    monkeypatch.setenv(dispatch.ENV_VAR, "torch")
    monkeypatch.setattr(gpu, "faiss_gpus", lambda: 1)

    def refuse(*args):
        raise RuntimeError("not implemented for GPU")

    monkeypatch.setattr(gpu, "FaissGpuSearcher", refuse)
    index = flat("pq4", "ip", vectors)
    assert isinstance(gpu.gpu_searcher(index.faiss, index.encoder, "ip"), gpu.TorchCodeScan)


def test_codes_are_a_snapshot_of_every_list(vectors) -> None:
    index = flat("pq8", "ip", vectors)
    codes, ids = gpu.list_contents(index.faiss)
    x, _, want_ids = vectors
    np.testing.assert_array_equal(ids, want_ids)
    np.testing.assert_array_equal(codes, index.encoder.encode(x))
