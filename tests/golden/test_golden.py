"""Golden files: an index saved by format version 1 must still load and answer the same."""

import json
from pathlib import Path

import numpy as np
from make_golden import FOLDER, HERE, data

from core.manifest import FORMAT_VERSION
from index import load_index


def test_version_1_index_still_loads_and_answers_the_same(tmp_path):
    import shutil

    copy = tmp_path / "golden"
    shutil.copytree(FOLDER, copy)  # loading must not need to write into the golden folder
    index = load_index(copy)
    _, xq = data()
    expected = json.loads((HERE / "pq_flat_rerank_v1.json").read_text())["ids"]
    np.testing.assert_array_equal(index.search(xq, 5).ids, expected)
    assert index.ntotal == 300


def test_format_version_bump_needs_new_golden_files():
    manifest = json.loads((FOLDER / "manifest.json").read_text())
    assert manifest["format_version"] == FORMAT_VERSION, "add golden files for the new version"
    assert Path(FOLDER / "encoder" / "manifest.json").exists()
