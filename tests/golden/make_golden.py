"""Regenerate the golden on-disk index (run only when the format version changes on purpose):

python tests/golden/make_golden.py
"""

import json
import shutil
from pathlib import Path

import numpy as np

from index import build_index, save_index

HERE = Path(__file__).parent
FOLDER = HERE / "pq_flat_rerank_v1"


def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(123)
    xb = rng.standard_normal((300, 16)).astype(np.float32)
    return xb, xb[:5] + 0.05


def main() -> None:
    xb, xq = data()
    shutil.rmtree(FOLDER, ignore_errors=True)
    spec = {"kind": "pq", "m": 4, "nbits": 4, "iterations": 3, "opq_iterations": 1}
    index = build_index(spec, {"kind": "flat", "rerank": {"enabled": True}}, 16, FOLDER)
    index.train(xb)
    index.add(np.arange(300) * 3, xb)
    save_index(index, FOLDER)
    res = index.search(xq, 5)
    (HERE / "pq_flat_rerank_v1.json").write_text(json.dumps({"ids": res.ids.tolist()}))


if __name__ == "__main__":
    main()
