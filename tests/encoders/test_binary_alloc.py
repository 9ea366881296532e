"""BinarySpec(method="allocated"): PCA + per-component bit allocation + learned level tables."""

import faiss
import numpy as np
import pytest
from oracles import clustered, exact_topk, recall

from core.errors import CorruptData
from encoders import BinarySpec, build_encoder, load_encoder
from encoders.binary import SEGMENT_DIMS, BinaryEncoder, unpack_codes
from encoders.binary_alloc import MAX_BITS, POWERS, AllocatedBinaryEncoder
from index import build_index


def anisotropic(n, seed):
    """Clustered unit vectors whose coordinates have very unequal spreads (as in test_binary)."""
    x = clustered(n, 32, seed=seed, clusters=64) * np.logspace(0.5, -0.5, 32).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def fitted(xb, bits=2, **kw):
    enc = build_encoder(BinarySpec(bits=bits, method="allocated", **kw), xb.shape[1])
    enc.fit(xb)
    return enc


def test_method_selects_the_encoder_and_old_specs_keep_their_meaning():
    assert type(build_encoder(BinarySpec(bits=2), 8)) is BinaryEncoder
    assert isinstance(build_encoder(BinarySpec(method="allocated"), 8), AllocatedBinaryEncoder)
    old = {"kind": "binary", "bits": 3, "learned": False, "constant_weight": False, "seed": 4}
    spec = BinarySpec.model_validate(old)  # a spec saved before `method` existed
    assert spec.method == "bebr" and spec.weight_power is None
    assert type(build_encoder(spec, 8)) is BinaryEncoder


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_code_holds_exactly_u_bits_per_dimension(bits):
    x = clustered(3000, 48, seed=5)  # 48 is a multiple of s for every u: no padding
    enc = fitted(x, bits=bits, weight_power=0.5)
    s = SEGMENT_DIMS[bits]
    assert enc.m * enc.nbits == bits * 48 and enc.code_size * 8 == bits * 48
    per_segment = enc.slot_bits.reshape(-1, s).sum(axis=1)
    np.testing.assert_array_equal(per_segment, np.full(enc.m, bits * s))  # no bit wasted
    assert enc.slot_bits.max() <= MAX_BITS and enc.slot_bits.sum() == bits * 48
    codes = enc.encode(x[:100])
    assert codes.shape == (100, bits * 48 // 8)
    keys = unpack_codes(codes, enc.m, enc.nbits)
    assert keys.max() < 2**enc.nbits


@pytest.mark.parametrize("bits", [2, 3])
def test_decode_is_the_nearest_level_of_each_principal_coordinate(bits):
    x = clustered(3000, 20, seed=6)  # 20 is padded at u=3 (s=3 -> 21 slots)
    enc = fitted(x, bits=bits)
    p = enc.projection
    used = np.abs(p).sum(axis=0) > 0
    np.testing.assert_allclose(p[:, used].T @ p[:, used], np.eye(used.sum()), atol=1e-5)
    z = x[:200] @ p
    expected = np.zeros_like(z)
    for i in np.flatnonzero(enc.slot_bits):
        levels = enc.levels[i, : 1 << enc.slot_bits[i]]
        expected[:, i] = levels[np.argmin(np.abs(z[:, i, None] - levels[None]), axis=1)]
    np.testing.assert_allclose(enc.decode(enc.encode(x[:200])), expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("bits", [1, 3])
def test_sdc_lookup_tables_equal_inner_products_of_decoded_vectors(bits):
    x = clustered(2000, 24, seed=7)
    enc = fitted(x, bits=bits)
    books = enc.codebooks().astype(np.float64)  # (m, 2**nbits, s), one per segment
    assert books.shape == (enc.m, 2**enc.nbits, SEGMENT_DIMS[bits])
    assert not np.array_equal(books[0], books[-1])
    q_keys = unpack_codes(enc.encode(x[:20]), enc.m, enc.nbits)
    x_keys = unpack_codes(enc.encode(x[20:300]), enc.m, enc.nbits)
    segments = np.arange(enc.m)
    luts = np.einsum("qjs,jks->qjk", books[segments, q_keys], books)  # (nq, m, 2**nbits)
    lut_scores = luts[:, segments[None, :], x_keys].sum(axis=2)  # (nq, n)
    reference = enc.query_view(x[:20]) @ enc.decode(enc.encode(x[20:300])).T
    np.testing.assert_allclose(lut_scores, reference, rtol=1e-5, atol=1e-5)


def test_faiss_product_quantizer_decodes_the_codes_like_the_encoder():
    x = clustered(2000, 16, seed=8)
    enc = fitted(x, bits=2)
    pq = faiss.ProductQuantizer(enc.out_dim, enc.m, enc.nbits)
    faiss.copy_array_to_vector(enc.codebooks().ravel(), pq.centroids)
    codes = enc.encode(x[:100])
    np.testing.assert_allclose(pq.decode(codes), enc.decode(codes), rtol=1e-6, atol=1e-7)


def test_flat_index_returns_the_top_k_of_brute_force_over_decoded_vectors(data):
    xb, xq = data
    index = build_index({"kind": "binary", "bits": 2, "method": "allocated"}, {"kind": "flat"}, 32)
    index.train(xb)
    index.add(np.arange(len(xb)), xb)
    res = index.search(xq, 10)
    enc = index.encoder
    ref_all = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
    ref_sorted = -np.sort(-ref_all, axis=1)[:, :10]
    np.testing.assert_allclose(res.scores, ref_sorted, rtol=1e-4, atol=1e-5)
    for row, (scores, ids) in enumerate(zip(res.scores, res.ids, strict=True)):
        np.testing.assert_allclose(ref_all[row, ids], scores, rtol=1e-4, atol=1e-5)
        sure = np.flatnonzero(ref_all[row] > ref_sorted[row, -1] + 1e-5)
        assert set(sure.tolist()) <= set(ids.tolist())


def test_save_load_round_trip_gives_identical_codes(data, tmp_path):
    xb, xq = data
    enc = fitted(xb, bits=3, seed=3)
    enc.save(tmp_path / "enc")
    back = load_encoder(tmp_path / "enc")
    assert isinstance(back, AllocatedBinaryEncoder) and back.spec == enc.spec
    np.testing.assert_array_equal(back.encode(xb), enc.encode(xb))
    codes = enc.encode(xq)
    np.testing.assert_array_equal(back.decode(codes), enc.decode(codes))
    assert sorted(back.state()) == ["levels", "projection", "slot_bits", "weight_power"]
    for name, arr in enc.state().items():
        np.testing.assert_array_equal(back.state()[name], arr)


def test_load_rejects_a_segment_with_too_many_bits(data, tmp_path):
    enc = fitted(data[0], bits=2)
    state = enc.state()
    state["slot_bits"] = np.full_like(state["slot_bits"], MAX_BITS)
    with pytest.raises(CorruptData):
        build_encoder(enc.spec, 32).load_state(state)


def test_fit_is_deterministic_per_seed_and_the_power_comes_from_the_collection(data):
    xb, _ = data
    a, b = fitted(xb), fitted(xb)
    for name, arr in a.state().items():
        np.testing.assert_array_equal(b.state()[name], arr)
    assert float(a.weight_power[0]) in POWERS
    assert float(fitted(xb, weight_power=0.3).weight_power[0]) == 0.3


def test_allocated_beats_training_free_bebr_on_anisotropic_clusters():
    x = anisotropic(4200, seed=11)
    xb, xq = x[200:], x[:200]
    _, truth = exact_topk(xq, xb, 10)
    found = {}
    for method in ("bebr", "allocated"):
        spec = BinarySpec(bits=2, method=method, learned=False)
        enc = build_encoder(spec, 32)
        enc.fit(xb)
        scores = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
        found[method] = recall(np.argsort(-scores, axis=1, kind="stable")[:, :10], truth)
    assert found["allocated"] >= found["bebr"] + 0.10, found


def test_spec_round_trips_through_json():
    spec = BinarySpec(bits=4, method="allocated", weight_power=0.25, seed=9)
    assert BinarySpec.model_validate_json(spec.model_dump_json()) == spec
