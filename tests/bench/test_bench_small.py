"""A small-data run of the benchmark harness, with recall floors (part of `make test`)."""

import numpy as np
import pytest

from bench.datasets.synthetic import synthetic
from bench.metrics import ndcg_at_k, recall_at_k, recall_within
from bench.report import Row, format_table, write_json
from bench.single import run_single

CONFIGS = (
    "faiss IndexFlatIP",
    "faiss PQ8",
    "faiss IVF512,PQ16x4fs",
    "pith float16 flat",
    "pith pq m8 + rerank 100",
    "pith pq m8 (opq, anisotropic)",
    "pith binary u=2 training-free",
    "pith flagship",
)


@pytest.fixture(scope="module")
def rows(tmp_path_factory) -> list[Row]:
    ds = synthetic(n=6000, nq=200, dim=64, seed=3)
    only = lambda name: any(name.startswith(c) for c in CONFIGS)  # noqa: E731
    return run_single(ds, 200, 0, tmp_path_factory.mktemp("bench"), only)


def by_name(rows: list[Row], prefix: str) -> Row:
    return next(r for r in rows if r.name.startswith(prefix))


def test_rows_cover_baselines_and_pith(rows):
    assert {r.baseline for r in rows} == {True, False}
    assert len(rows) == len(CONFIGS)


def test_recall_floors(rows):
    assert by_name(rows, "faiss IndexFlatIP").recall_at_10 == 1.0
    assert by_name(rows, "pith float16 flat").recall_at_10 >= 0.99
    pq = by_name(rows, "pith pq m8 +")
    assert pq.recall_at_10 >= 0.85
    assert pq.recall_at_10 > by_name(rows, "pith pq m8 (").recall_at_10 + 0.2  # the re-rank works
    assert by_name(rows, "pith binary u=2").recall_at_10 >= 0.3
    flagship = by_name(rows, "pith flagship")
    assert flagship.recall_at_10 >= 0.9
    assert flagship.bytes_per_vector_ram < 64 * 4 / 2  # 4-bit codes + ids + lists, not floats


def test_bytes_reported(rows):
    flat = by_name(rows, "faiss IndexFlatIP")
    assert flat.bytes_per_vector_ram == 64 * 4
    pq = by_name(rows, "pith pq m8 +")
    assert 8 + 8 <= pq.bytes_per_vector_ram < 40  # codes + id + amortised codebooks
    assert pq.bytes_per_vector_disk >= 64 * 2  # float16 re-rank rows


def test_json_and_table(rows, tmp_path):
    write_json(rows, tmp_path / "rows.json")
    import json

    doc = json.loads((tmp_path / "rows.json").read_text())
    keys = {"dataset", "name", "baseline", "bytes_per_vector_ram", "bytes_per_vector_disk"}
    assert keys | {"recall_at_10", "ndcg_at_10", "qps", "build_s"} <= set(doc[0])
    assert format_table(rows).count("\n") == len(rows) + 1


def test_metrics_on_known_cases():
    truth = np.array([[1, 2, 3], [4, 5, 6]])
    found = np.array([[3, 2, 9], [7, 8, 9]])
    assert recall_at_k(found, truth, 3) == pytest.approx(2 / 6)
    assert recall_within(np.array([[9, 9, 1, 2, 3]]), np.array([[1, 2, 3]]), 3, 5) == 1.0
    assert ndcg_at_k(np.array([[5, 1], [2, 3]]), np.array([1, 7]), 2) == pytest.approx(
        (1 / np.log2(3)) / 2
    )
