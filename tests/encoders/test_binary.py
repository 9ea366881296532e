import faiss
import numpy as np
import pytest
from oracles import clustered, exact_topk, recall
from pydantic import ValidationError

from core.errors import InvalidInput, NotTrained
from encoders import BinarySpec, build_encoder, load_encoder
from encoders.binary import SEGMENT_DIMS, pack_codes, unpack_codes
from index import build_index

# small and quick: a few rotation updates and optimizer steps on a few thousand vectors
FAST = {
    "hidden": 64,
    "rotation_iterations": 2,
    "train_steps": 60,
    "eval_every": 30,
    "batch_size": 256,
    "anchors": 2000,
    "validation": 200,
    "max_train": 4000,
}


def fitted(xb, bits=2, learned=False, **kw):
    enc = build_encoder(BinarySpec(bits=bits, learned=learned, **{**FAST, **kw}), xb.shape[1])
    enc.fit(xb)
    return enc


def sdc_search(enc, xq, xb, k):
    """Top-k by inner products of the reconstructions: the SDC oracle."""
    scores = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, axis=1), order


def assert_same_ranking(scores, ids, ref_all, k):
    """Tie-aware: the reported scores are the k best reference scores, each found id really has
    its reported score, and every id strictly above the k-th score is found."""
    ref_sorted = -np.sort(-ref_all, axis=1)[:, :k]
    np.testing.assert_allclose(scores, ref_sorted, rtol=1e-4, atol=1e-5)
    for row, (s, i) in enumerate(zip(scores, ids, strict=True)):
        assert len(set(i.tolist())) == k
        np.testing.assert_allclose(ref_all[row, i], s, rtol=1e-4, atol=1e-5)
        sure = np.flatnonzero(ref_all[row] > ref_sorted[row, -1] + 1e-5)
        assert set(sure.tolist()) <= set(i.tolist())


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_code_layout(data, bits):
    xb, _ = data
    enc = fitted(xb, bits=bits)
    s = SEGMENT_DIMS[bits]
    assert enc.nbits == bits * s
    assert enc.out_dim % s == 0 and enc.out_dim >= xb.shape[1]
    assert enc.code_size == -(-enc.m * enc.nbits // 8)
    codes = enc.encode(xb[:50])
    assert codes.dtype == np.uint8 and codes.shape == (50, enc.code_size)
    assert enc.codebooks().shape == (enc.m, 2**enc.nbits, s)


def test_sdc_table_is_symmetric_gram_matrix(data):
    enc = fitted(data[0], bits=3)
    table = enc.sdc_table()
    book = enc.segment_codebook().astype(np.float64)
    np.testing.assert_allclose(table, table.T)
    np.testing.assert_allclose(table, book @ book.T, rtol=1e-5, atol=1e-7)
    # every segment holds the same codebook
    books = enc.codebooks()
    assert np.array_equal(books[0], books[-1])


@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_codes_match_faiss_product_quantizer_layout(bits):
    # dim 10 is padded for every u (s = 8, 4, 3, 2 -> 16, 12, 12, 10)
    x = clustered(600, 10, seed=3)
    enc = fitted(x, bits=bits)
    codes = enc.encode(x[:100])
    pq = faiss.ProductQuantizer(enc.out_dim, enc.m, enc.nbits)
    faiss.copy_array_to_vector(enc.codebooks().ravel(), pq.centroids)
    assert pq.code_size == enc.code_size
    np.testing.assert_array_equal(pq.decode(codes), enc.decode(codes))
    np.testing.assert_array_equal(pq.compute_codes(enc.decode(codes)), codes)


def test_pack_unpack_nine_bits_round_trip():
    rng = np.random.default_rng(0)
    keys = rng.integers(0, 512, size=(20, 7))
    codes = pack_codes(keys, 9)
    assert codes.shape == (20, 8)
    np.testing.assert_array_equal(unpack_codes(codes, 7, 9), keys)
    # LSB first: key 0 fills bits 0..8, so byte 1's lowest bit is key 0's bit 8
    assert codes[0, 0] == keys[0, 0] & 0xFF
    assert codes[0, 1] & 1 == keys[0, 0] >> 8


def test_decode_is_sum_of_scaled_signs(data):
    xb, _ = data
    enc = fitted(xb, bits=3)
    digits = enc.digits(xb[:40])
    signs = 2.0 * ((digits[:, :, None] >> np.arange(3)) & 1) - 1.0
    expected = (signs * enc.scales).sum(axis=2)
    np.testing.assert_allclose(enc.decode(enc.encode(xb[:40])), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("constant_weight", [False, True])
@pytest.mark.parametrize("bits", [1, 2])
def test_training_free_codes_round_trip_through_decode(data, bits, constant_weight):
    # identity transform and alpha_1 > alpha_2: the reconstruction re-encodes to the same code
    # (from u=3 on, alpha_1 may be below alpha_2 + alpha_3 and a reconstruction can flip a sign)
    xb, _ = data
    enc = fitted(xb, bits=bits, constant_weight=constant_weight)
    assert np.all(np.diff(enc.scales) < 0)
    codes = enc.encode(xb[:200])
    np.testing.assert_array_equal(enc.encode(enc.decode(codes)[:, : xb.shape[1]]), codes)


@pytest.mark.parametrize("bits", [2, 3, 4])
def test_constant_weight_reconstructions_share_one_norm(data, bits):
    xb, xq = data
    enc = fitted(xb, bits=bits, learned=True, train_steps=5)
    norms = np.linalg.norm(enc.decode(enc.encode(np.vstack([xb[:300], xq]))), axis=1)
    np.testing.assert_allclose(norms, norms[0], rtol=1e-5)
    free = fitted(xb, bits=bits, constant_weight=False)
    free_norms = np.linalg.norm(free.decode(free.encode(xb[:300])), axis=1)
    assert free_norms.std() > 100 * norms.std()  # free signs: norms vary


@pytest.mark.parametrize("constant_weight", [False, True])
@pytest.mark.parametrize("bits", [1, 2, 3, 4])
def test_numpy_encoder_matches_torch_model(data, bits, constant_weight):
    """The numpy coding path reproduces the torch model's signs (random, non-zero MLPs)."""
    import torch

    from encoders.binary_train import ResidualBinarizer

    xb, _ = data
    enc = fitted(xb, bits=bits, constant_weight=constant_weight)
    model = ResidualBinarizer(enc.state(), 16, 0.1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        for p in (model.w2, model.b2, model.projection):
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
        recon = model(torch.from_numpy(xb[:500])).numpy()
    enc.load_state(model.export())
    np.testing.assert_allclose(enc.decode(enc.encode(xb[:500])), recon, rtol=1e-5, atol=1e-6)


def test_sdc_search_equals_ranking_by_reconstructions(data):
    xb, xq = data
    index = build_index({"kind": "binary", "bits": 2, "learned": False}, {"kind": "flat"}, 32)
    index.train(xb)
    index.add(np.arange(len(xb)), xb)
    res = index.search(xq, 10)
    enc = index.encoder
    ref_all = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
    assert_same_ranking(res.scores, res.ids, ref_all, 10)


def test_learned_sdc_search_equals_ranking_by_reconstructions(data):
    xb, xq = data
    spec = {"kind": "binary", "bits": 3, "learned": True, **FAST}
    index = build_index(spec, {"kind": "flat"}, 32)
    index.train(xb)
    index.add(np.arange(len(xb)), xb)
    res = index.search(xq, 10)
    enc = index.encoder
    ref_all = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
    assert_same_ranking(res.scores, res.ids, ref_all, 10)


def test_one_bit_sdc_ranking_is_hamming_ranking(data):
    xb, xq = data
    enc = fitted(xb, bits=1)
    bq, bb = enc.digits(xq), enc.digits(xb)
    hamming = (bq[:, None, :] != bb[None, :, :]).sum(axis=2)
    sdc = enc.query_view(xq) @ enc.decode(enc.encode(xb)).T
    alpha = float(enc.scales[0])
    # <z^_q, z^_x> = alpha^2 (d - 2 hamming): an exact affine function of the Hamming distance
    np.testing.assert_array_equal(np.rint(sdc / alpha**2), enc.out_dim - 2 * hamming)
    # so sorting by SDC score sorts by Hamming distance (ties aside)
    order = np.argsort(-sdc, axis=1, kind="stable")
    assert np.all(np.diff(np.take_along_axis(hamming, order, axis=1), axis=1) >= 0)


def test_ivf_without_residuals_matches_flat_when_probing_every_list(data):
    xb, xq = data
    enc_spec = {"kind": "binary", "bits": 2, "learned": False}
    flat = build_index(enc_spec, {"kind": "flat"}, 32)
    ivf = build_index(enc_spec, {"kind": "ivf", "nlist": 8, "nprobe": 8, "by_residual": False}, 32)
    for index in (flat, ivf):
        index.train(xb)
        index.add(np.arange(len(xb)), xb)
    a, b = flat.search(xq, 10), ivf.search(xq, 10)
    np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5, atol=1e-6)


def test_ivf_with_residuals_is_rejected():
    from core.errors import InvalidSpec

    with pytest.raises(InvalidSpec):
        build_index({"kind": "binary"}, {"kind": "ivf", "nlist": 4, "by_residual": True}, 8)


def test_save_load_round_trip_is_bit_exact(data, tmp_path):
    xb, xq = data
    enc = fitted(xb, bits=2, learned=True)
    enc.save(tmp_path / "enc")
    back = load_encoder(tmp_path / "enc")
    assert back.spec == enc.spec and back.is_trained
    np.testing.assert_array_equal(back.encode(xb), enc.encode(xb))
    codes = enc.encode(xq)
    np.testing.assert_array_equal(back.decode(codes), enc.decode(codes))
    for name, arr in enc.state().items():
        np.testing.assert_array_equal(back.state()[name], arr)


@pytest.mark.parametrize("constant_weight", [False, True])
def test_training_free_save_load(data, tmp_path, constant_weight):
    xb, _ = data
    enc = fitted(xb, bits=4, constant_weight=constant_weight)
    enc.save(tmp_path / "enc")
    back = load_encoder(tmp_path / "enc")
    names = ["counts", "projection", "scales"] if constant_weight else ["projection", "scales"]
    assert sorted(back.state()) == names
    np.testing.assert_array_equal(back.encode(xb), enc.encode(xb))


def test_training_is_deterministic_per_seed(data):
    xb, _ = data
    a, b = fitted(xb, learned=True), fitted(xb, learned=True)
    np.testing.assert_array_equal(a.encode(xb), b.encode(xb))
    for name, arr in a.state().items():
        np.testing.assert_array_equal(b.state()[name], arr)
    c = fitted(xb, learned=True, seed=1)
    assert not np.array_equal(c.state()["w1"], a.state()["w1"])
    assert not np.array_equal(c.state()["projection"], a.state()["projection"])


def test_training_moves_away_from_training_free_start(data):
    # without validation every checkpoint is accepted: the last one is returned
    xb, _ = data
    learned, free = fitted(xb, learned=True, validation=0), fitted(xb)
    assert np.abs(learned.state()["w2"]).max() > 0  # zero-initialised last layers trained
    assert not np.array_equal(learned.state()["projection"], free.state()["projection"])
    assert not np.array_equal(learned.encode(xb), free.encode(xb))


def test_learned_map_is_a_rotation_before_sgd(data):
    xb, _ = data
    enc = fitted(xb, bits=2, learned=True, train_steps=0, validation=0, rotation_iterations=3)
    p = enc.state()["projection"]  # 32 x 32 (s = 4 divides 32)
    np.testing.assert_allclose(p @ p.T, np.eye(32), atol=1e-5)
    assert not np.allclose(p, np.eye(32), atol=1e-3)


def anisotropic(n, seed):
    """Clustered unit vectors whose coordinates have very unequal spreads: one scale per step
    shared by every dimension fits them badly until a learned rotation mixes the dimensions."""
    x = clustered(n, 32, seed=seed, clusters=64) * np.logspace(0.5, -0.5, 32).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_learned_beats_training_free_on_anisotropic_clusters():
    x = anisotropic(4200, seed=11)
    xb, xq = x[200:], x[:200]  # queries from the same distribution
    _, truth = exact_topk(xq, xb, 10)
    found = {}
    for learned in (False, True):
        enc = fitted(xb, bits=2, learned=learned, rotation_iterations=8, validation=300)
        found[learned] = recall(sdc_search(enc, xq, xb, 10)[1], truth)
    assert found[True] >= found[False] + 0.05, found
    assert found[True] >= 0.50, found


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((3, 31), np.float32),
        np.zeros((2, 3, 32), np.float32),
        np.array([["a"] * 32]),
        np.full((2, 32), np.nan, np.float32),
        np.full((2, 32), np.inf, np.float32),
    ],
)
def test_bad_vectors_raise_invalid_input(data, bad):
    enc = fitted(data[0], bits=2)
    for call in (enc.encode, enc.query_view, enc.fit):
        with pytest.raises(InvalidInput):
            call(bad)


def test_bad_codes_raise_invalid_input(data):
    enc = fitted(data[0], bits=2)
    with pytest.raises(InvalidInput, match="uint8"):
        enc.decode(np.zeros((2, enc.code_size), np.int32))
    with pytest.raises(InvalidInput, match="shape"):
        enc.decode(np.zeros((2, enc.code_size + 1), np.uint8))


def test_untrained_encoder_refuses_to_encode():
    enc = build_encoder(BinarySpec(bits=2), 16)
    with pytest.raises(NotTrained):
        enc.encode(np.zeros((1, 16), np.float32))


@pytest.mark.parametrize("bits", [0, 5, -1])
def test_bits_outside_one_to_four_rejected(bits):
    with pytest.raises(ValidationError):
        BinarySpec(bits=bits)


def test_spec_round_trips_through_json():
    spec = BinarySpec(bits=3, learned=False, seed=7, hidden=32, constant_weight=False)
    assert BinarySpec.model_validate_json(spec.model_dump_json()) == spec
