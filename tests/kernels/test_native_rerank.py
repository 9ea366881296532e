"""The compiled float16 re-rank (kernels._native) against the numpy path and a float64 oracle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from kernel_helpers import assert_topk_matches

from kernels import native, rerank

pytestmark = pytest.mark.skipif(
    not native.available() and shutil.which("cc") is None,
    reason="built only where a C compiler was present at install time",
)


def test_the_extension_is_built_where_a_compiler_is() -> None:
    assert native.available(), "kernels._native did not build: see setup.py"
    assert native.simd() in ("avx2+f16c", "portable")


def _case(seed: int, n: int = 700, d: int = 40, nq: int = 50, c: int = 30):
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, d)).astype(np.float16)
    xq = rng.standard_normal((nq, d)).astype(np.float32)
    rows = np.stack([rng.choice(n, c, replace=False) for _ in range(nq)])
    rows[:, -4:] = -1  # unknown candidates are dropped
    rows[3] = -1  # a query with no candidate at all
    return vectors, xq, rows, rows * 3 + 11


@pytest.mark.parametrize("metric", ["ip", "l2"])
def test_native_matches_numpy_path_and_oracle(metric: str, monkeypatch) -> None:
    vectors, xq, rows, ids = _case(5)
    k = 28  # more than the 26 known candidates: the tail is missing
    got = native.rerank_f16(xq, ids, rows, vectors, k, metric)
    monkeypatch.setattr(native, "available", lambda: False)
    want = rerank.rerank(xq, ids, rows, vectors, k, metric)
    np.testing.assert_array_equal(got[1], want[1])
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-4)
    missing = np.inf if metric == "l2" else -np.inf
    assert (got[1][:, 26:] == -1).all() and (got[0][:, 26:] == missing).all()
    assert (got[1][3] == -1).all()
    sign = 1.0 if metric == "ip" else -1.0
    for i in (0, 17, 49):
        cand = vectors[rows[i, :26]].astype(np.float64)
        q = xq[i].astype(np.float64)
        ref = cand @ q if metric == "ip" else -((cand - q) ** 2).sum(1)
        one = (sign * got[0][i : i + 1], got[1][i : i + 1])
        assert_topk_matches(ref[None], *one, k, labels=ids[i, :26], rtol=1e-5)


def test_rerank_routes_float16_rows_to_the_compiled_kernel(monkeypatch) -> None:
    vectors, xq, rows, ids = _case(6)
    calls = []
    real = native.rerank_f16
    monkeypatch.setattr(native, "rerank_f16", lambda *a: calls.append(1) or real(*a))
    rerank.rerank(xq, ids, rows, vectors, 5)
    rerank.rerank(xq, ids, rows, vectors.astype(np.float32), 5)  # float32 rows: numpy
    assert calls == [1]


VALUE_CLASSES = np.array(  # subnormals, zeros of both signs, the largest finite value
    [6e-8, -6e-8, 3e-5, 0.0, -0.0, 65504.0, -2.5, 1.0, 0.333], np.float16
)


def value_scores(rerank_f16) -> np.ndarray:
    """Each float16 value class as a one-dimensional row scored against the query 1.0: the
    scores are the values themselves, converted exactly, best first."""
    n = len(VALUE_CLASSES)
    rows = np.arange(n)[None, :]
    scores, best = rerank_f16(
        np.ones((1, 1), np.float32), rows, rows, VALUE_CLASSES[:, None], n, "ip"
    )
    assert sorted(best[0].tolist()) == list(range(n))
    return scores[0]


def test_every_float16_value_class_converts_exactly() -> None:
    want = np.sort(VALUE_CLASSES.astype(np.float32))[::-1]
    np.testing.assert_array_equal(value_scores(native.rerank_f16), want)


def test_bad_rows_and_dtypes_are_refused() -> None:
    vectors, xq, rows, ids = _case(7, n=100)
    rows[0, 0] = 100  # one past the end
    with pytest.raises(IndexError, match="row 100 of 100"):
        native.rerank_f16(xq, ids, rows, vectors, 5, "ip")
    with pytest.raises(TypeError, match="float16"):
        native.rerank_f16(xq, ids, rows, vectors.astype(np.float32), 5, "ip")


def test_no_candidates_gives_missing_results() -> None:
    vectors, xq, _, _ = _case(8)
    empty = np.zeros((len(xq), 0), np.int64)
    scores, ids = native.rerank_f16(xq, empty, empty, vectors, 3, "ip")
    assert (ids == -1).all() and (scores == -np.inf).all()


def test_the_portable_loop_gives_the_same_answers(tmp_path) -> None:
    """PITH_NATIVE_PORTABLE=1 makes the extension use its portable C loop (what a CPU without
    AVX2/F16C runs): same ids, same scores as numpy, float16 subnormals, negative zero and
    the largest finite value included."""
    vectors, xq, rows, ids = _case(9, d=37)  # odd: no 16-wide part in the portable loop
    vectors[:5, :4] = np.array([6e-8, -3e-5, 65504.0, -0.0], np.float16)
    rows[:, 0] = np.arange(len(rows)) % 5  # every query sees the special rows
    want = rerank.rerank(xq, ids, rows, vectors.astype(np.float32), 8, "ip")  # numpy
    for name, a in (("vectors", vectors), ("xq", xq), ("rows", rows), ("ids", ids)):
        np.save(tmp_path / f"{name}.npy", a)
    script = (
        "import numpy as np, sys; from kernels import native\n"
        "from test_native_rerank import value_scores\n"
        "d = sys.argv[1]; ld = lambda n: np.load(f'{d}/{n}.npy')\n"
        "s, i = native.rerank_f16(ld('xq'), ld('ids'), ld('rows'), ld('vectors'), 8, 'ip')\n"
        "np.save(f'{d}/s.npy', s); np.save(f'{d}/i.npy', i)\n"
        "np.save(f'{d}/v.npy', value_scores(native.rerank_f16)); print(native.simd())\n"
    )
    here = os.path.dirname(__file__)
    path = os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PITH_NATIVE_PORTABLE": "1", "PYTHONPATH": path}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "portable"
    got_s, got_i = np.load(tmp_path / "s.npy"), np.load(tmp_path / "i.npy")
    np.testing.assert_array_equal(got_i, want[1])
    finite = np.isfinite(want[0])
    assert (np.isfinite(got_s) == finite).all()
    np.testing.assert_allclose(got_s[finite], want[0][finite], rtol=1e-5, atol=1e-4)
    want_v = np.sort(VALUE_CLASSES.astype(np.float32))[::-1]
    np.testing.assert_array_equal(np.load(tmp_path / "v.npy"), want_v)
