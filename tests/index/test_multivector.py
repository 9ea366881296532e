"""MultiVectorIndex: FDE candidates + exact Chamfer re-rank against a brute-force oracle, id
filters, removal, persistence, the token store, and typed errors."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from core.arrays import pack_multivectors
from core.errors import InvalidInput, InvalidSpec, NotTrained
from encoders.spec import BinarySpec, MuveraSpec, PQSpec
from index.factory import build_index
from index.multivector import (
    MultiVectorIndex,
    build_multivector_index,
    load_multivector_index,
)
from index.spec import FlatSpec, IVFSpec, RerankSpec
from index.tokens import TokenFile
from kernels.chamfer import chamfer_all, chamfer_rerank, chamfer_topk

DIM = 32
SPEC = MuveraSpec(r_reps=10, k_sim=3, d_proj=8, seed=1)
PQ_SPEC = SPEC.model_copy(
    update={"fde": PQSpec(m=160, nbits=4, opq=False, balanced=False, iterations=8)}
)


def topic_clouds(n: int, seed: int, topics: np.ndarray) -> list[np.ndarray]:
    """Documents of 4-16 unit tokens around 2 of the topics."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        own = topics[rng.choice(len(topics), 2, replace=False)]
        t = int(rng.integers(4, 17))
        x = own[rng.integers(0, 2, t)] + 0.5 * rng.standard_normal((t, DIM))
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return out


def noisy_queries(docs: list[np.ndarray], n: int, seed: int) -> list[np.ndarray]:
    """Queries made of 3-6 noisy tokens of a random document."""
    rng = np.random.default_rng(seed)
    out = []
    for i in rng.choice(len(docs), n, replace=False):
        d = docs[i]
        x = d[rng.integers(0, len(d), int(rng.integers(3, 7)))]
        x = x + 0.3 * rng.standard_normal(x.shape)
        out.append((x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32))
    return out


@pytest.fixture(scope="module")
def corpus() -> tuple[list[np.ndarray], list[np.ndarray]]:
    topics = np.random.default_rng(0).standard_normal((40, DIM)).astype(np.float32)
    docs = topic_clouds(1500, seed=1, topics=topics)
    return docs, noisy_queries(docs, 60, seed=2)


def exact(queries: list[np.ndarray], docs: list[np.ndarray], ids: np.ndarray | None = None):
    """(nq, n) exact Chamfer scores (float16 tokens, as the store keeps them) and their ids."""
    qt, qo = pack_multivectors(queries)
    dt, do = pack_multivectors([d.astype(np.float16).astype(np.float32) for d in docs])
    scores = chamfer_all(qt, qo, dt, do)
    return scores, np.arange(len(docs)) if ids is None else ids


def recall_tie_aware(found_scores: np.ndarray, exact_scores: np.ndarray, k: int) -> float:
    """Fraction of found top-k scores at least the exact k-th best (ties count as hits)."""
    kth = -np.sort(-exact_scores, axis=1)[:, k - 1 : k]
    return float(np.mean(found_scores[:, :k] >= kth - 1e-4))


def built(docs, spec=SPEC, index_spec=None, ids=None, folder=None) -> MultiVectorIndex:
    index = build_multivector_index(spec, index_spec or FlatSpec(), DIM, folder)
    index.train(docs)
    index.add(np.arange(len(docs)) if ids is None else ids, docs)
    return index


def test_chamfer_brute_force_matches_definition(corpus) -> None:
    docs, queries = corpus
    scores, _ = exact(queries[:5], docs[:50])
    for i, q in enumerate(queries[:5]):
        for j, p in enumerate(docs[:50]):
            p16 = p.astype(np.float16).astype(np.float32)
            assert scores[i, j] == pytest.approx(float((q @ p16.T).max(1).sum()), abs=1e-4)
    qt, qo = pack_multivectors(queries[:5])
    dt, do = pack_multivectors([d.astype(np.float16).astype(np.float32) for d in docs[:50]])
    top_s, top_i = chamfer_topk(qt, qo, dt, do, 7, query_batch=2)
    np.testing.assert_allclose(top_s, -np.sort(-scores, axis=1)[:, :7], rtol=1e-6)
    np.testing.assert_allclose(np.take_along_axis(scores, top_i, 1), top_s, rtol=1e-6)


def test_all_candidates_give_exact_chamfer_top_k(corpus) -> None:
    docs, queries = corpus
    index = built(docs)
    res = index.search(queries, 10, candidates=len(docs))
    scores, _ = exact(queries, docs)
    assert recall_tie_aware(res.scores, scores, 10) == 1.0
    got = np.take_along_axis(scores, res.ids, 1)
    np.testing.assert_allclose(res.scores, got, atol=1e-4)


@pytest.mark.parametrize(
    "spec, index_spec, floor",
    [
        (SPEC, FlatSpec(), 0.94),
        (PQ_SPEC, IVFSpec(nlist=1, nprobe=1), 0.92),
        (PQ_SPEC, IVFSpec(nlist=8, nprobe=8, by_residual=False), 0.92),
    ],
)
def test_recall_floor_with_a_fifth_of_the_documents_as_candidates(
    corpus, spec, index_spec, floor
) -> None:
    docs, queries = corpus
    index = built(docs, spec, index_spec)
    res = index.search(queries, 10, candidates=300)
    scores, _ = exact(queries, docs)
    assert recall_tie_aware(res.scores, scores, 10) >= floor
    fde_only = index.candidates(queries, 10).ids
    assert recall_tie_aware(np.take_along_axis(scores, fde_only, 1), scores, 10) < 1.0


def test_add_in_batches_matches_one_batch(corpus, monkeypatch) -> None:
    import index.multivector

    docs, queries = corpus
    whole = built(docs[:300])
    monkeypatch.setattr(index.multivector, "ADD_BATCH", 64)
    batched = built(docs[:300])
    a, b = whole.search(queries, 10, candidates=50), batched.search(queries, 10, candidates=50)
    assert np.array_equal(a.ids, b.ids) and np.array_equal(a.scores, b.scores)
    assert batched.tokens.records[:, 0].tolist() == list(range(300))


def test_binary_fde_codes_work_end_to_end(corpus) -> None:
    docs, queries = corpus
    spec = SPEC.model_copy(update={"fde": BinarySpec(bits=1, learned=False)})
    index = built(docs, spec, IVFSpec(nlist=1, by_residual=False))
    assert index.encoder.code_size == index.encoder.fde_dim // 8
    res = index.search(queries, 10, candidates=300)
    scores, _ = exact(queries, docs)
    assert recall_tie_aware(res.scores, scores, 10) >= 0.5


def test_allowed_ids_filter_both_stages(corpus) -> None:
    docs, queries = corpus
    ids = 10_000 + 7 * np.arange(len(docs))  # sparse ids: the token store keeps a map
    index = built(docs, ids=ids)
    allowed = ids[::5]
    res = index.search(queries, 10, candidates=len(allowed), allowed=allowed)
    assert np.isin(res.ids, allowed).all()
    scores, _ = exact(queries, docs)
    sub = scores[:, ::5]
    assert recall_tie_aware(res.scores, sub, 10) == 1.0
    few = index.search(queries[:3], 10, candidates=20, allowed=allowed[:4])
    assert (few.ids[:, 4:] == -1).all() and np.isin(few.ids[:, :4], allowed[:4]).all()
    assert np.isneginf(few.scores[:, 4:]).all()


def test_remove_and_re_add(corpus) -> None:
    docs, queries = corpus
    index = built(docs)
    first = index.search(queries, 5, candidates=200).ids
    gone = np.unique(first[:, 0])
    assert index.remove(gone) == len(gone)
    assert index.remove(gone) == 0
    assert index.ntotal == len(docs) - len(gone)
    after = index.search(queries, 5, candidates=len(docs))
    assert not np.isin(after.ids, gone).any()
    index.add(gone + 100_000, [docs[i] for i in gone])
    again = index.search(queries, 5, candidates=200).ids
    assert np.isin(gone + 100_000, again[:, 0]).mean() > 0.9


@pytest.mark.parametrize("spec, index_spec", [(SPEC, FlatSpec()), (PQ_SPEC, IVFSpec(nlist=4))])
def test_save_load_round_trip(tmp_path, corpus, spec, index_spec) -> None:
    docs, queries = corpus
    index = built(docs, spec, index_spec, folder=tmp_path / "work")
    index.remove(np.arange(0, 100))
    before = index.search(queries, 10, candidates=100)
    index.save(tmp_path / "saved")
    back = load_multivector_index(tmp_path / "saved")
    after = back.search(queries, 10, candidates=100)
    assert np.array_equal(before.ids, after.ids)
    assert np.array_equal(before.scores, after.scores)
    assert back.ntotal == index.ntotal == len(docs) - 100
    assert back.bytes_on_disk() == index.bytes_on_disk() > 0
    index.save(tmp_path / "work")  # in place
    assert np.array_equal(
        load_multivector_index(tmp_path / "work").search(queries, 10, candidates=100).ids,
        before.ids,
    )


def test_bytes_accounting(corpus) -> None:
    docs, _ = corpus
    flat = built(docs)
    pq = built(docs, PQ_SPEC, IVFSpec(nlist=1))
    n_tokens = sum(len(d) for d in docs)
    assert flat.bytes_on_disk() >= n_tokens * DIM * 2
    fde_dim = flat.encoder.fde_dim
    assert flat.bytes_in_ram() >= len(docs) * (fde_dim * 4 + 8)
    assert pq.bytes_in_ram() < flat.bytes_in_ram() / 5


def test_typed_errors(corpus, tmp_path) -> None:
    docs, queries = corpus
    empty = build_multivector_index(SPEC, FlatSpec(), DIM)  # float FDEs need no training
    assert (empty.search(queries[:2], 5).ids == -1).all()
    index = build_multivector_index(PQ_SPEC, IVFSpec(nlist=2), DIM)
    with pytest.raises(NotTrained):
        index.search(queries, 5)
    with pytest.raises(NotTrained):
        index.add([0], docs[:1])
    index.train(docs[:400])
    with pytest.raises(InvalidInput):
        index.add([0, 1], docs[:1])  # ids and documents disagree
    with pytest.raises(InvalidInput):
        index.add([0], [np.zeros((0, DIM), np.float32)])  # empty multi-vector
    with pytest.raises(InvalidInput):
        index.add([-1], docs[:1])
    index.add(np.arange(200), docs[:200])
    with pytest.raises(InvalidInput):
        index.search([np.ones((3, DIM + 1), np.float32)], 5)
    with pytest.raises(InvalidInput):
        index.search([np.full((3, DIM), np.nan, np.float32)], 5)
    with pytest.raises(InvalidInput):
        index.search(queries, 0)
    with pytest.raises(InvalidInput):
        index.search(queries, 5, allowed=[[1, 2]])
    with pytest.raises(InvalidSpec):
        build_multivector_index(SPEC, FlatSpec(rerank=RerankSpec(enabled=True)), DIM)
    with pytest.raises(Exception, match="manifest"):
        load_multivector_index(tmp_path)


def test_token_store_records_and_crash_tail(tmp_path) -> None:
    store = TokenFile(tmp_path, 4)
    docs = [np.full((n, 4), n, np.float32) for n in (2, 3, 1)]
    tokens, offsets = pack_multivectors(docs)
    store.append(np.array([0, 1, 2]), tokens, offsets)
    starts, lengths = store.locate(np.array([[2, 0, 7, -1]]))
    assert starts.tolist() == [[5, 0, 0, 0]] and lengths.tolist() == [[1, 2, 0, 0]]
    store.remove(np.array([1]))
    store.append(np.array([0]), np.full((4, 4), 9, np.float32), np.array([0, 4]))
    starts, lengths = store.locate(np.array([0, 1, 2]))
    assert lengths.tolist() == [4, 0, 1] and starts[0] == 6
    with open(tmp_path / "tokens.f16", "ab") as f:  # a crash between tokens and records
        f.write(np.ones((3, 4), np.float16).tobytes() + b"\x00")
    with open(tmp_path / "doc_records.i64", "ab") as f:
        f.write(b"\x01\x02")
    reopened = TokenFile(tmp_path, 4)
    assert reopened.n_rows == 10 and len(reopened) == 5
    assert reopened.locate(np.array([0]))[1].tolist() == [4]
    assert np.array_equal(reopened.tokens[6:10], np.full((4, 4), 9, np.float16))


def test_rerank_drops_unknown_candidates() -> None:
    rng = np.random.default_rng(3)
    tokens = rng.standard_normal((10, 4)).astype(np.float16)
    q = rng.standard_normal((2, 4)).astype(np.float32)
    ids = np.array([[5, 6, -1]])
    starts, lengths = np.array([[0, 4, 0]]), np.array([[4, 6, 0]])
    scores, out = chamfer_rerank(q, np.array([0, 2]), ids, starts, lengths, tokens, 3)
    t = tokens.astype(np.float32)
    want = sorted([(q @ t[:4].T).max(1).sum(), (q @ t[4:].T).max(1).sum()], reverse=True)
    np.testing.assert_allclose(scores[0, :2], want, rtol=1e-5)
    assert out[0, 2] == -1 and np.isneginf(scores[0, 2])


def test_an_index_given_no_folder_removes_its_temporary_one(corpus) -> None:
    docs, _ = corpus
    index = built(docs[:40])
    folder = index.folder
    assert (folder / "tokens").is_dir()
    single = build_index(
        {"kind": "float32"}, {"kind": "flat", "rerank": {"enabled": True}}, DIM, None
    )
    single.train(np.ones((4, DIM), np.float32))
    single.add(np.arange(4), np.eye(4, DIM, dtype=np.float32))
    rerank_folder = single.folder
    assert rerank_folder is not None and (rerank_folder / "rerank").is_dir()
    del index, single
    gc.collect()
    assert not folder.exists() and not rerank_folder.exists()
