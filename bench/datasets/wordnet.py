"""wordnet-minilm and wordnet-minilm-tokens: WordNet 3.0 glosses embedded with all-MiniLM-L6-v2.

Documents are "lemma, lemma: definition" texts of the 117,659 synsets; queries are the 48,339
quoted example sentences of the glosses, and each query's relevant document is its own synset.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence

import numpy as np

from bench.datasets.base import (
    MultiVectorDataset,
    VectorDataset,
    cache_root,
    load_arrays,
    save_arrays,
)
from bench.datasets.wordnet_text import Synset, read_synsets

FORMAT = 1


def _doc_subset(synsets: Sequence[Synset], limit: int | None, seed: int) -> np.ndarray:
    """Indices of the documents kept: all of them, or a seeded sample of `limit`."""
    if limit is None or limit >= len(synsets):
        return np.arange(len(synsets))
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(len(synsets), size=limit, replace=False))


def _queries(synsets: Sequence[Synset], kept: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Example sentences of the kept synsets, with the position of their synset in `kept`."""
    texts: list[str] = []
    qrels: list[int] = []
    for pos, i in enumerate(kept):
        for example in synsets[i].examples:
            texts.append(example)
            qrels.append(pos)
    return texts, np.asarray(qrels, dtype=np.int64)


def _log(msg: str) -> None:
    print(f"[wordnet] {msg}", file=sys.stderr, flush=True)


def wordnet_minilm(limit: int | None = None, seed: int = 0) -> VectorDataset:
    """Build (once, then cached) the single-vector wordnet-minilm dataset."""
    tag = "full" if limit is None else f"limit{limit}-seed{seed}"
    folder = cache_root() / f"wordnet-minilm-v{FORMAT}" / tag
    cached = load_arrays(folder, ["xb", "xq", "qrels"])
    if cached is None:
        from embed import MiniLM

        synsets = read_synsets()
        kept = _doc_subset(synsets, limit, seed)
        q_texts, qrels = _queries(synsets, kept)
        model = MiniLM()
        t0 = time.time()
        _log(f"embedding {len(kept)} documents and {len(q_texts)} queries into {folder}")
        xb = model.encode([synsets[i].text for i in kept])
        _log(f"documents done in {time.time() - t0:.0f} s")
        xq = model.encode(q_texts)
        _log(f"queries done in {time.time() - t0:.0f} s")
        meta = {"docs": len(kept), "queries": len(q_texts), "model": "all-MiniLM-L6-v2"}
        save_arrays(folder, meta, xb=xb, xq=xq, qrels=qrels)
        cached = load_arrays(folder, ["xb", "xq", "qrels"])
        assert cached is not None
    return VectorDataset(
        name="wordnet-minilm",
        xb=np.ascontiguousarray(cached["xb"], dtype=np.float32),
        xq=np.ascontiguousarray(cached["xq"], dtype=np.float32),
        qrels=np.asarray(cached["qrels"]),
    )


def wordnet_minilm_tokens(n_docs: int = 20_000, seed: int = 0) -> MultiVectorDataset:
    """Build (once, then cached) the multi-vector wordnet-minilm-tokens dataset."""
    folder = cache_root() / f"wordnet-minilm-tokens-v{FORMAT}" / f"docs{n_docs}-seed{seed}"
    names = ["doc_vectors", "doc_offsets", "query_vectors", "query_offsets", "qrels"]
    cached = load_arrays(folder, names)
    if cached is None:
        from embed import MiniLM

        synsets = read_synsets()
        kept = _doc_subset(synsets, n_docs, seed)
        q_texts, qrels = _queries(synsets, kept)
        model = MiniLM()
        _log(f"embedding tokens of {len(kept)} documents and {len(q_texts)} queries")
        docs = model.encode_tokens([synsets[i].text for i in kept])
        queries = model.encode_tokens(q_texts)
        meta: dict[str, object] = {
            "docs": len(kept),
            "queries": len(q_texts),
            "doc_tokens": len(docs.vectors),
        }
        save_arrays(
            folder,
            meta,
            doc_vectors=docs.vectors.astype(np.float16),
            doc_offsets=docs.offsets,
            query_vectors=queries.vectors,
            query_offsets=queries.offsets,
            qrels=qrels,
        )
        cached = load_arrays(folder, names)
        assert cached is not None
    return MultiVectorDataset(
        name="wordnet-minilm-tokens",
        doc_vectors=np.asarray(cached["doc_vectors"]),
        doc_offsets=np.asarray(cached["doc_offsets"]),
        query_vectors=np.ascontiguousarray(cached["query_vectors"], dtype=np.float32),
        query_offsets=np.asarray(cached["query_offsets"]),
        qrels=np.asarray(cached["qrels"]),
    )
