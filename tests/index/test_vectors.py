"""The float16 re-rank file: FAISS-readable, append-only, crash-tolerant."""

import os

import faiss
import numpy as np

from index.vectors import HEADER_BYTES, VectorFile


def test_file_is_a_faiss_fp16_index(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((50, 8)).astype(np.float32)
    vf = VectorFile(tmp_path, 8, "ip")
    rows = vf.append(np.arange(50) + 7, x)
    np.testing.assert_array_equal(rows, np.arange(50))
    index = faiss.read_index(str(vf.path), faiss.IO_FLAG_MMAP_IFC)
    assert index.ntotal == 50
    np.testing.assert_allclose(index.reconstruct_n(0, 50), x.astype(np.float16), rtol=0, atol=0)
    np.testing.assert_array_equal(vf.vectors, x.astype(np.float16))


def test_latest_row_wins_and_all_rows_match(tmp_path):
    vf = VectorFile(tmp_path, 4, "ip")
    vf.append(np.array([10, 11]), np.ones((2, 4)))
    vf.append(np.array([10]), np.full((1, 4), 2.0))
    np.testing.assert_array_equal(vf.rows_of(np.array([10, 11, 12])), [2, 1, -1])
    np.testing.assert_array_equal(np.sort(vf.rows_matching(np.array([10]))), [0, 2])
    np.testing.assert_array_equal(vf.ids_of(np.array([2, -1])), [10, -1])


def test_identity_ids_need_no_map(tmp_path):
    vf = VectorFile(tmp_path, 4, "ip")
    vf.append(np.arange(5), np.ones((5, 4)))
    np.testing.assert_array_equal(vf.rows_of(np.array([3, 9])), [3, -1])
    assert vf.bytes_in_ram() == 0


def test_torn_append_is_cut_on_reopen(tmp_path):
    vf = VectorFile(tmp_path, 4, "l2")
    vf.append(np.arange(3), np.ones((3, 4)))
    with open(vf.path, "ab") as f:  # a crash after writing half a row, before the header
        f.write(b"\x00" * 5)
    with open(tmp_path / "vector_ids.i64", "ab") as f:
        f.write(np.int64(99).tobytes())
    again = VectorFile(tmp_path, 4, "l2")
    assert len(again) == 3
    assert os.path.getsize(again.path) == HEADER_BYTES + 3 * 4 * 2
    assert faiss.read_index(str(again.path)).ntotal == 3
    np.testing.assert_array_equal(again.ids, [0, 1, 2])


def test_increasing_ids_are_searched_on_disk_without_a_map(tmp_path):
    vf = VectorFile(tmp_path, 4, "ip")
    vf.append(np.array([3, 8, 20]), np.ones((3, 4)))
    vf.append(np.array([21, 40]), np.ones((2, 4)))
    np.testing.assert_array_equal(vf.rows_of(np.array([40, 8, 9])), [4, 1, -1])
    np.testing.assert_array_equal(vf.rows_matching(np.array([20, 5])), [2])
    assert vf.bytes_in_ram() == 0
    vf.append(np.array([8]), np.ones((1, 4)))  # out of order: falls back to a sorted map
    np.testing.assert_array_equal(vf.rows_of(np.array([8])), [5])
    np.testing.assert_array_equal(np.sort(vf.rows_matching(np.array([8]))), [1, 5])
