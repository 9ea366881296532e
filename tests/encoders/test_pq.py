import faiss
import numpy as np
import pytest
import torch
from oracles import exact_topk, recall

from core.errors import InvalidInput, InvalidSpec, NotTrained
from encoders import PQSpec, build_encoder, load_encoder
from encoders.pq_train import sinkhorn_assign, sq_distances

FAST = {"iterations": 6, "opq_iterations": 2, "max_train": 4000}


_FITTED: dict[tuple, object] = {}


def fitted(data, **kw):
    """A fitted encoder per setting, shared by the tests (fitting is the slow part)."""
    key = tuple(sorted(kw.items()))
    if key not in _FITTED:
        xb, _ = data
        enc = build_encoder(PQSpec(m=8, **{**FAST, **kw}), xb.shape[1])
        enc.fit(xb)
        _FITTED[key] = enc
    return _FITTED[key]


def test_sinkhorn_assignment_is_balanced():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2048, 4)).astype(np.float32)
    x[:1024] += 4.0  # two blobs of unequal spread: plain nearest-centroid is unbalanced
    c = x[rng.choice(2048, 16, replace=False)]
    dist = sq_distances(torch.from_numpy(x)[None], torch.from_numpy(c)[None])
    plain = np.bincount(dist.argmin(2)[0].numpy(), minlength=16)
    balanced = np.bincount(sinkhorn_assign(dist, 0.05, 50)[0][0].numpy(), minlength=16)
    assert balanced.std() < plain.std() / 2
    assert balanced.max() <= 2048 / 16 * 1.5


def faiss_pq(enc, codes):
    """A FAISS IndexPQ on the encoder's codebooks holding the given codes."""
    ref = faiss.IndexPQ(enc.out_dim, enc.spec.m, enc.nbits, faiss.METRIC_INNER_PRODUCT)
    faiss.copy_array_to_vector(enc.codebooks().ravel(), ref.pq.centroids)
    ref.is_trained = True
    faiss.copy_array_to_vector(np.ascontiguousarray(codes).ravel(), ref.codes)
    ref.ntotal = len(codes)
    return ref


def test_adc_scores_equal_faiss_index_pq_on_same_codebooks(data):
    xb, xq = data
    enc = fitted(data)
    codes = enc.encode(xb)
    ref_scores, ref_ids = faiss_pq(enc, codes).search(enc.query_view(xq), 10)
    ours = enc.scores(xq, codes)
    np.testing.assert_allclose(
        np.take_along_axis(ours, ref_ids, 1), ref_scores, rtol=1e-4, atol=1e-5
    )


def test_eta_one_codes_are_faiss_nearest_centroid_codes(data):
    xb, _ = data
    enc = fitted(data, anisotropic_eta=1.0)
    assert enc.nearest_centroid_codes
    ref = faiss_pq(enc, enc.encode(xb[:1]))
    np.testing.assert_array_equal(ref.sa_encode(enc.transform(xb[:50])), enc.encode(xb[:50]))


def aniso_loss(enc, x, codes, eta):
    z = enc.transform(x)
    r = z - enc.decode(codes)
    u = z / np.linalg.norm(z, axis=1, keepdims=True)
    par = (r * u).sum(1)
    return (r * r).sum(1) + (eta - 1) * par**2, par**2


@pytest.mark.parametrize("nbits", [4, 8])
def test_anisotropic_codes_trade_orthogonal_for_parallel_error(data, nbits):
    xb, _ = data
    plain = fitted(data, anisotropic_eta=1.0, nbits=nbits)
    aniso = build_encoder(plain.spec.model_copy(update={"anisotropic_eta": 4.0}), xb.shape[1])
    aniso.load_state(plain.state())
    aniso.is_trained = True
    assert not aniso.nearest_centroid_codes
    c_plain, c_aniso = plain.encode(xb), aniso.encode(xb)
    assert (c_plain != c_aniso).any(axis=1).mean() > 0.2
    loss_p, par_p = aniso_loss(plain, xb, c_plain, 4.0)
    loss_a, par_a = aniso_loss(aniso, xb, c_aniso, 4.0)
    assert loss_a.mean() < 0.95 * loss_p.mean()  # descent lowered the loss it minimises
    assert par_a.mean() < 0.8 * par_p.mean()
    # (its recall gain on real embeddings is measured by `python -m bench`)


@pytest.mark.parametrize("m", [7, 8])
def test_four_bit_pack_unpack_round_trip(m):
    from encoders.pq import pack_codes, unpack_codes

    rng = np.random.default_rng(m)
    digits = rng.integers(0, 16, size=(50, m))
    packed = pack_codes(digits, 4, -(-m // 2))
    assert packed.shape == (50, -(-m // 2))
    np.testing.assert_array_equal(unpack_codes(packed, m, 4), digits)


@pytest.mark.parametrize("balanced", [False, True])
@pytest.mark.parametrize("opq", [False, True])
def test_pq_recall_floor(data, balanced, opq):
    xb, xq = data
    enc = fitted(data, balanced=balanced, opq=opq)
    scores = enc.scores(xq, enc.encode(xb))
    found = np.argsort(-scores, axis=1)[:, :10]
    assert recall(found, exact_topk(xq, xb, 10)[1]) > 0.45


def test_rotation_is_orthogonal_and_preserves_inner_products(data):
    enc = fitted(data)
    r = enc.rotation
    np.testing.assert_allclose(r.T @ r, np.eye(r.shape[1]), atol=1e-4)


def test_nbits4_packs_two_codes_per_byte(data):
    enc = fitted(data, nbits=4)
    assert enc.code_size == 4
    assert enc.encode(data[0][:3]).shape == (3, 4)


def test_padding_when_m_does_not_divide_dim():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((600, 30)).astype(np.float32)
    enc = build_encoder(PQSpec(m=8, nbits=4, **FAST), 30)
    enc.fit(x)
    assert enc.out_dim == 32
    err = ((enc.decode(enc.encode(x)) - enc.transform(x)) ** 2).sum() / (x**2).sum()
    assert err < 0.5


def test_save_load_round_trip_bit_exact(data, tmp_path):
    xb, xq = data
    enc = fitted(data)
    enc.save(tmp_path / "enc")
    back = load_encoder(tmp_path / "enc")
    np.testing.assert_array_equal(back.encode(xb), enc.encode(xb))
    np.testing.assert_array_equal(back.decode(enc.encode(xq)), enc.decode(enc.encode(xq)))
    assert back.spec == enc.spec


def test_deterministic_per_seed(data):
    xb, _ = data
    a = fitted(data, seed=3)
    b = build_encoder(a.spec, xb.shape[1])
    b.fit(xb)
    c = fitted(data, seed=4)
    np.testing.assert_array_equal(a.codebooks(), b.codebooks())
    assert not np.array_equal(a.codebooks(), c.codebooks())


def test_errors_are_typed(data):
    xb, _ = data
    enc = build_encoder(PQSpec(m=8, **FAST), 32)
    with pytest.raises(NotTrained):
        enc.encode(xb)
    with pytest.raises(InvalidSpec, match="training vectors"):
        enc.fit(xb[:10])
    with pytest.raises(InvalidSpec, match="sub-quantizers"):
        build_encoder(PQSpec(m=64), 32)
    enc.fit(xb)
    with pytest.raises(InvalidInput, match="dimension 32"):
        enc.encode(xb[:, :16])
    bad = xb[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(InvalidInput, match="NaN"):
        enc.encode(bad)


def test_spec_round_trips_through_json():
    spec = PQSpec(m=16, nbits=4, opq=False, balanced=True, seed=7)
    assert PQSpec.model_validate_json(spec.model_dump_json()) == spec
    with pytest.raises(ValueError):
        PQSpec(m=16, nbits=5)
    with pytest.raises(ValueError):
        PQSpec.model_validate({"kind": "pq", "m": 8, "unknown": 1})
