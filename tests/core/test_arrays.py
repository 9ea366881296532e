import numpy as np
import pytest

from core.arrays import as_ids, as_matrix, as_multivectors, pack_multivectors
from core.errors import InvalidInput


def test_matrix_is_contiguous_float32():
    x = np.arange(12, dtype=np.float64).reshape(3, 4)[:, ::-1]
    out = as_matrix(x, 4)
    assert out.dtype == np.float32 and out.flags.c_contiguous
    np.testing.assert_array_equal(out, x)


def test_vector_becomes_one_row():
    assert as_matrix([1, 2, 3], 3).shape == (1, 3)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros((2, 5)), "expected dimension 4, got 5"),
        (np.zeros((2, 2, 4)), "expected a 2-D array"),
        (np.array([[1, 2, np.nan, 4]]), "NaN or infinity"),
        (np.array([[1, 2, np.inf, 4]]), "NaN or infinity"),
        (np.array([["a", "b", "c", "d"]]), "expected numbers"),
        ([[1, 2], [3]], "not a numeric array"),
    ],
)
def test_bad_matrices_raise_typed_errors(bad, message):
    with pytest.raises(InvalidInput, match=message):
        as_matrix(bad, 4)


def test_ids_checked():
    assert as_ids([1, 2**62]).dtype == np.int64
    with pytest.raises(InvalidInput, match=r"\[0, 2\*\*63"):
        as_ids([-1])
    with pytest.raises(InvalidInput, match="expected 3 ids, got 2"):
        as_ids([1, 2], n=3)
    with pytest.raises(InvalidInput, match="expected integers"):
        as_ids([1.5])


def test_multivectors_reject_empty_documents():
    with pytest.raises(InvalidInput, match=r"documents\[1\]: empty"):
        as_multivectors([np.ones((2, 3)), np.zeros((0, 3))], 3)


def test_pack_multivectors_offsets():
    flat, offsets = pack_multivectors([np.ones((2, 3)), np.zeros((1, 3))])
    assert flat.shape == (3, 3)
    np.testing.assert_array_equal(offsets, [0, 2, 3])
