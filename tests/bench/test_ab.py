"""bench.ab on a small synthetic set: every configuration timed in every round, recall
scored against exact search, and ratios taken per round against the baseline."""

import pytest

from bench.ab import Timed, report, run
from bench.datasets.synthetic import synthetic
from bench.harness import Context, K
from bench.metrics import recall_at_k
from bench.single import context


@pytest.fixture(scope="module")
def ctx(tmp_path_factory) -> Context:
    ds = synthetic(n=6000, nq=200, dim=64, seed=3)
    return context(ds, 200, 0, tmp_path_factory.mktemp("ab"))


@pytest.fixture(scope="module")
def timed(ctx: Context) -> list[Timed]:
    return run(ctx, rounds=3, nprobe=8)


def test_every_configuration_is_timed_in_every_round(timed: list[Timed]) -> None:
    assert [t.name.split()[:2] for t in timed] == [
        ["faiss", "IVF512,PQ16x4fs"],
        ["faiss", "HNSW32,Flat"],
        ["pith", "flagship"],
        ["pith", "flagship"],
    ]
    assert "nprobe80 " in timed[2].name and "nprobe8 " in timed[3].name
    assert all(len(t.qps) == 3 and min(t.qps) > 0 for t in timed)


def test_recall_is_against_exact_search(ctx: Context, timed: list[Timed]) -> None:
    assert all(0.5 < t.recall <= 1.0 for t in timed)
    for t in timed:
        assert recall_at_k(t.search(ctx.xq), ctx.truth, K) == t.recall
    assert (timed[2].search(ctx.xq) != timed[3].search(ctx.xq)).any()  # its nprobe is used


def test_ratios_are_taken_per_round() -> None:
    base = Timed("base", lambda q: q, qps=[100.0, 50.0, 200.0])
    other = Timed("other", lambda q: q, recall=0.9, qps=[110.0, 60.0, 180.0])
    lines = report([base, other], 3).splitlines()
    assert lines[2].endswith("1.000 (1.000-1.000)")
    assert lines[3].split()[1:] == ["0.9000", "110", "1.100", "(0.900-1.200)"]
