"""MUVERA FDE encoder: exact identities, the Chamfer bound, Gray-code partitions and filling,
a slow per-point reference, muvera-python agreement, persistence and input validation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import InvalidInput, InvalidSpec
from encoders.base import SPEC_ADAPTER
from encoders.factory import build_encoder, load_encoder
from encoders.muvera import MuveraEncoder
from encoders.spec import Float16Spec, MuveraSpec, PQSpec
from kernels.fde import FdeMatrices, fde_batch, gray_partition, partition_bits


def clouds(n: int, dim: int, seed: int, max_tokens: int = 12) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((int(rng.integers(1, max_tokens + 1)), dim)).astype(np.float32)
        for _ in range(n)
    ]


def chamfer(q: np.ndarray, p: np.ndarray) -> float:
    return float((q.astype(np.float64) @ p.T.astype(np.float64)).max(1).sum())


# slow reference: google/graph-mining fixed_dimensional_encoding.cc, one point at a time ------
def ref_partition(sketch: np.ndarray) -> int:
    g = 0
    for value in sketch:
        bit = int(value > 0)
        g = (g << 1) + (bit ^ (g & 1))  # AppendToGrayCode
    return g


def ref_distance(sketch: np.ndarray, partition: int) -> int:
    binary = partition ^ (partition >> 1)  # the C++ GrayCodeToBinary
    k = len(sketch)
    return sum(int(sketch[j] > 0) != ((binary >> (k - 1 - j)) & 1) for j in range(k))


def ref_fde(enc: MuveraEncoder, cloud: np.ndarray, is_query: bool) -> np.ndarray:
    mats, spec = enc.mats, enc.spec
    k, r_reps, p = mats.k_sim, mats.r_reps, mats.n_partitions
    d = mats.d_proj
    out = np.zeros(r_reps * p * d, dtype=np.float64)
    for r in range(r_reps):
        sim = mats.simhash[:, r * k : (r + 1) * k].astype(np.float64)
        sketches = [point.astype(np.float64) @ sim for point in cloud]
        if mats.projection is None:
            projected = [point.astype(np.float64) for point in cloud]
        else:
            proj = mats.projection[:, r * d : (r + 1) * d].astype(np.float64)
            projected = [point.astype(np.float64) @ proj for point in cloud]
        counts = [0] * p
        for sketch, y in zip(sketches, projected, strict=True):
            part = ref_partition(sketch)
            counts[part] += 1
            base = (r * p + part) * d
            out[base : base + d] += y
        for part in range(p):
            base = (r * p + part) * d
            if is_query:
                continue
            if counts[part] > 0:
                out[base : base + d] /= counts[part]
            elif spec.fill_empty and k > 0:
                dists = [ref_distance(s, part) for s in sketches]
                out[base : base + d] = projected[int(np.argmin(dists))]
    if enc.sketch is not None:
        final = np.zeros(enc.sketch.out_dim)
        for i, value in enumerate(out):
            final[enc.sketch.bucket[i]] += enc.sketch.sign[i] * value
        out = final
    return out


@pytest.mark.parametrize(
    "spec",
    [
        MuveraSpec(r_reps=3, k_sim=3, d_proj=4, seed=7),
        MuveraSpec(r_reps=2, k_sim=4, d_proj=None, seed=1),
        MuveraSpec(r_reps=2, k_sim=2, d_proj=5, final_dim=37, seed=2),
        MuveraSpec(r_reps=2, k_sim=3, d_proj=6, fill_empty=False, seed=3),
    ],
)
def test_matches_per_point_reference(spec: MuveraSpec) -> None:
    enc = MuveraEncoder(spec, 10)
    docs = clouds(12, 10, seed=5)
    got_docs = enc.encode_documents(docs)
    got_queries = enc.encode_queries(docs)
    for i, cloud in enumerate(docs):
        np.testing.assert_allclose(got_docs[i], ref_fde(enc, cloud, False), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(got_queries[i], ref_fde(enc, cloud, True), rtol=1e-5, atol=1e-5)


def test_chunked_batches_match_one_by_one(monkeypatch: pytest.MonkeyPatch) -> None:
    import kernels.fde

    monkeypatch.setattr(kernels.fde, "_CHUNK_ELEMENTS", 64)  # forces many small chunks
    enc = MuveraEncoder(MuveraSpec(r_reps=2, k_sim=3, d_proj=4), 8)
    docs = clouds(30, 8, seed=9)
    batch = enc.encode_documents(docs)
    single = np.concatenate([enc.encode_documents([d]) for d in docs])
    np.testing.assert_allclose(batch, single, rtol=1e-6, atol=1e-6)


def test_k_sim_zero_identity_is_sum_dot_mean() -> None:
    r_reps = 3
    enc = MuveraEncoder(MuveraSpec(r_reps=r_reps, k_sim=0, d_proj=None), 16)
    docs, queries = clouds(5, 16, seed=1), clouds(4, 16, seed=2)
    scores = enc.encode_queries(queries) @ enc.encode_documents(docs).T
    expected = np.array([[q.sum(0) @ p.mean(0) for p in docs] for q in queries]) * r_reps
    np.testing.assert_allclose(scores, expected, rtol=1e-5, atol=1e-5)


point_clouds = st.integers(1, 6).flatmap(
    lambda n: st.lists(
        st.lists(st.floats(-4, 4, width=32), min_size=n, max_size=n), min_size=1, max_size=7
    )
)


@settings(max_examples=60, deadline=None)
@given(q=point_clouds.filter(lambda c: len(c[0]) == 6), p=point_clouds, seed=st.integers(0, 99))
def test_fde_score_with_fill_is_at_most_chamfer(q: list, p: list, seed: int) -> None:
    dim = 6
    p = [row[:dim] + [0.0] * (dim - len(row)) for row in p]
    q_arr, p_arr = np.array(q, np.float32), np.array(p, np.float32)
    enc = MuveraEncoder(MuveraSpec(r_reps=4, k_sim=3, d_proj=None, seed=seed), dim)
    score = float(
        enc.encode_queries([q_arr])[0].astype(np.float64) @ enc.encode_documents([p_arr])[0]
    )
    assert score / 4 <= chamfer(q_arr, p_arr) + 1e-3 * (1 + abs(chamfer(q_arr, p_arr)))


def test_deterministic_per_seed_and_different_across_seeds() -> None:
    docs = clouds(6, 12, seed=3)
    a = MuveraEncoder(MuveraSpec(r_reps=4, k_sim=3, d_proj=4, final_dim=50, seed=11), 12)
    b = MuveraEncoder(MuveraSpec(r_reps=4, k_sim=3, d_proj=4, final_dim=50, seed=11), 12)
    c = MuveraEncoder(MuveraSpec(r_reps=4, k_sim=3, d_proj=4, final_dim=50, seed=12), 12)
    assert np.array_equal(a.encode_documents(docs), b.encode_documents(docs))
    assert np.array_equal(a.encode_queries(docs), b.encode_queries(docs))
    assert not np.allclose(a.encode_documents(docs), c.encode_documents(docs))


def test_layout_and_dimension() -> None:
    spec = MuveraSpec(r_reps=3, k_sim=2, d_proj=5)
    enc = MuveraEncoder(spec, 9)
    assert enc.fde_dim == 3 * 4 * 5 == spec.fde_dim_for(9)
    cloud = clouds(1, 9, seed=4)[0][:1]  # one token: one non-empty partition per repetition
    q = enc.encode_queries([cloud])[0].reshape(3, 4, 5)
    for r in range(3):
        part = ref_partition(cloud[0] @ enc.mats.simhash[:, 2 * r : 2 * r + 2])
        expected = cloud[0] @ enc.mats.projection[:, 5 * r : 5 * r + 5]
        np.testing.assert_allclose(q[r, part], expected, rtol=1e-6)
        assert np.count_nonzero(np.abs(q[r]).sum(1)) == 1


# Gray code: a point's own partition is at distance 0 from its sketch -------------------------
def all_bit_patterns(k: int) -> np.ndarray:
    return ((np.arange(1 << k)[:, None] >> np.arange(k - 1, -1, -1)) & 1).astype(bool)


@pytest.mark.parametrize("k", [1, 2, 3, 5, 8])
def test_partition_bits_invert_the_gray_partition(k: int) -> None:
    bits = all_bit_patterns(k)
    parts = gray_partition(bits)
    assert sorted(parts.tolist()) == list(range(1 << k))  # a bijection
    packed = (bits * (1 << np.arange(k - 1, -1, -1))).sum(1)
    assert np.array_equal(partition_bits(parts), packed)  # distance to own partition is 0
    for sketch in np.where(bits, 1.0, -1.0):
        assert ref_distance(sketch, ref_partition(sketch)) == 0


def prefix_xor_decode(p: int) -> int:
    """muvera-python's helper.gray_code_to_binary: the full Gray-to-binary inverse."""
    mask = p >> 1
    while mask:
        p ^= mask
        mask >>= 1
    return p


def test_prefix_xor_decode_would_break_the_invariant() -> None:
    k = 3
    bits = all_bit_patterns(k)
    parts = gray_partition(bits)
    packed = (bits * (1 << np.arange(k - 1, -1, -1))).sum(1)
    wrong = np.array([prefix_xor_decode(int(p)) for p in parts])
    assert not np.array_equal(wrong, packed)
    assert np.array_equal(partition_bits(parts), packed)


def test_muvera_python_distance_to_own_partition_is_not_zero() -> None:
    helper = pytest.importorskip("muvera.helper")
    sketch = np.array([1.0, -1.0, -1.0], dtype=np.float32)  # bits 100 -> partition 0b111
    assert helper.partition_index_gray(sketch) == ref_partition(sketch) == 7
    assert ref_distance(sketch, 7) == 0
    assert helper.distance_to_partition(sketch, 7) != 0  # the bug this encoder avoids


def hand_matrices() -> FdeMatrices:
    """k_sim = dim = 3 and an identity SimHash: a point's sketch bits are its coordinates' signs."""
    return FdeMatrices(np.eye(3, dtype=np.float32), None, r_reps=1, k_sim=3)


def test_fill_takes_the_point_one_hamming_step_away() -> None:
    a = np.array([2.0, -1.0, -1.0], np.float32)  # bits 100 -> partition 7
    b = np.array([-1.0, 3.0, 1.0], np.float32)  # bits 011 -> partition 2
    tokens = np.stack([a, b])
    fde = fde_batch(tokens, np.array([0, 2]), hand_matrices(), is_query=False, fill_empty=True)
    fde = fde.reshape(8, 3)
    np.testing.assert_array_equal(fde[7], a)
    np.testing.assert_array_equal(fde[2], b)
    # partition 5 stands for bits 5 ^ 2 = 111: b (011) is 1 step away, a (100) is 2.
    # The prefix-XOR decode reads 5 as bits 110, which would pick a instead.
    np.testing.assert_array_equal(fde[5], b)
    assert prefix_xor_decode(5) == 0b110
    # partition 6 stands for bits 101: a is 1 step away, b is 2 (prefix-XOR: 100 -> a too)
    np.testing.assert_array_equal(fde[6], a)
    for part in range(8):
        want = min(
            (0b100, a), (0b011, b), key=lambda t: bin(t[0] ^ (part ^ (part >> 1))).count("1")
        )
        np.testing.assert_array_equal(fde[part], want[1])


def test_fill_ties_take_the_first_point_and_queries_are_not_filled() -> None:
    a = np.array([-1.0, -2.0, -1.0], np.float32)  # bits 000 -> partition 0
    b = np.array([1.0, 2.0, -1.0], np.float32)  # bits 110 -> partition 4
    # partition 3 stands for bits 3 ^ 1 = 010: one step from both a and b
    first_a = fde_batch(np.stack([a, b]), np.array([0, 2]), hand_matrices(), False, True)
    first_b = fde_batch(np.stack([b, a]), np.array([0, 2]), hand_matrices(), False, True)
    np.testing.assert_array_equal(first_a.reshape(8, 3)[3], a)
    np.testing.assert_array_equal(first_b.reshape(8, 3)[3], b)
    np.testing.assert_array_equal(first_a.reshape(8, 3)[4], b)
    query = fde_batch(np.stack([a, b]), np.array([0, 2]), hand_matrices(), True, False)
    assert np.count_nonzero(np.abs(query.reshape(8, 3)).sum(1)) == 2


# agreement with muvera-python where its semantics are right ---------------------------------
@pytest.fixture
def muvera_python(monkeypatch: pytest.MonkeyPatch):
    muvera = pytest.importorskip("muvera")
    return muvera, sys.modules["muvera.muvera"]


@pytest.mark.parametrize("d_proj", [8, None])
def test_agrees_with_muvera_python_except_its_decode(muvera_python, monkeypatch, d_proj) -> None:
    muvera, module = muvera_python
    docs = clouds(40, 24, seed=8)
    spec = MuveraSpec(r_reps=4, k_sim=4, d_proj=d_proj, seed=5)
    ours = MuveraEncoder(spec, 24)
    theirs = muvera.Muvera(4, 4, 24, "ams_sketch" if d_proj else "identity", d_proj, True, None, 5)
    np.testing.assert_allclose(ours.encode_queries(docs), theirs.encode_queries(docs), atol=1e-5)
    assert np.abs(ours.encode_documents(docs) - theirs.encode_documents(docs)).max() > 0.1
    monkeypatch.setattr(muvera, "_RUST_AVAILABLE", False)
    monkeypatch.setattr(module, "gray_code_to_binary", lambda p: p ^ (p >> 1))
    np.testing.assert_allclose(
        ours.encode_documents(docs), theirs.encode_documents(docs), atol=1e-5
    )


# persistence ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fde",
    [
        Float16Spec(),
        PQSpec(m=8, nbits=4, opq=False, balanced=False, iterations=3),
        PQSpec(m=8, nbits=8, opq=True, opq_iterations=2, iterations=3, balanced=False),
    ],
)
def test_save_load_round_trip_is_bit_exact(tmp_path, fde) -> None:
    spec = MuveraSpec(r_reps=2, k_sim=2, d_proj=4, final_dim=24, fde=fde, seed=4)
    enc = build_encoder(spec, 12)
    assert isinstance(enc, MuveraEncoder)
    docs = clouds(300, 12, seed=6)
    enc.fit(docs)
    enc.save(tmp_path)
    back = load_encoder(tmp_path)
    assert isinstance(back, MuveraEncoder) and back.spec == spec and back.is_trained
    assert np.array_equal(back.encode(docs), enc.encode(docs))
    assert np.array_equal(back.query_view(docs[:5]), enc.query_view(docs[:5]))
    assert np.array_equal(back.decode(enc.encode(docs)), enc.decode(enc.encode(docs)))
    assert not list(tmp_path.glob("*.pkl"))


def test_saved_matrices_are_used_on_load(tmp_path) -> None:
    enc = MuveraEncoder(MuveraSpec(r_reps=2, k_sim=2, d_proj=4), 6)
    enc.save(tmp_path)
    sim = np.load(tmp_path / "simhash.npy")
    np.save(tmp_path / "simhash.npy", -sim)  # as if numpy's streams had changed
    back = load_encoder(tmp_path)
    assert isinstance(back, MuveraEncoder)
    assert np.array_equal(back.mats.simhash, -sim)


def test_spec_round_trips_through_json() -> None:
    spec = MuveraSpec(r_reps=3, k_sim=4, d_proj=None, final_dim=100, fde=PQSpec(m=4))
    assert SPEC_ADAPTER.validate_json(SPEC_ADAPTER.dump_json(spec)) == spec


def test_scores_approximate_chamfer_ranking() -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 16)).astype(np.float32)
    docs = [centres[rng.integers(0, 20, 6)] + 0.3 * rng.standard_normal((6, 16)) for _ in range(80)]
    docs = [d.astype(np.float32) for d in docs]
    queries = [d[:3] + 0.1 * rng.standard_normal((3, 16)).astype(np.float32) for d in docs[:20]]
    enc = MuveraEncoder(MuveraSpec(r_reps=20, k_sim=3, d_proj=None), 16)
    scores = enc.scores(queries, enc.encode(docs))
    exact = np.array([[chamfer(q, p) for p in docs] for q in queries])
    agree = np.mean(scores.argmax(1) == exact.argmax(1))
    assert agree >= 0.8


# validation ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        [np.zeros((0, 8), np.float32)],
        [np.ones((3, 7), np.float32)],
        [np.array([[np.nan] * 8], np.float32)],
        [np.array([[np.inf] * 8], np.float32)],
        [np.ones(8, np.float32).reshape(1, 1, 8)],
        [np.array([["a"] * 8])],
        np.ones((3, 8), np.float32),
        "tokens",
    ],
)
def test_bad_inputs_raise_invalid_input(bad) -> None:
    enc = MuveraEncoder(MuveraSpec(r_reps=2, k_sim=2, d_proj=4), 8)
    with pytest.raises(InvalidInput):
        enc.encode_documents(bad)
    with pytest.raises(InvalidInput):
        enc.encode_queries(bad)


def test_bad_specs_raise_invalid_spec() -> None:
    with pytest.raises(InvalidSpec):
        MuveraEncoder(MuveraSpec(d_proj=16), 8)  # d_proj above the token dimension
    with pytest.raises(InvalidSpec):
        MuveraEncoder(MuveraSpec(r_reps=1000, k_sim=20, d_proj=8, final_dim=64), 8)


def test_codes_need_a_trained_inner_encoder() -> None:
    from core.errors import NotTrained

    enc = MuveraEncoder(MuveraSpec(r_reps=2, k_sim=2, d_proj=4, fde=PQSpec(m=4)), 8)
    assert not enc.is_trained
    with pytest.raises(NotTrained):
        enc.encode(clouds(3, 8, seed=0))
