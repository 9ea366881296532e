"""Build an index from specs; save it to and load it from a directory with a manifest."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.manifest import load_npy, read_manifest, save_npy, write_manifest
from encoders.base import Encoder
from encoders.factory import build_encoder, load_encoder
from index.base import INDEX_SPEC, Index
from index.flat import FlatIndex
from index.hnsw import HNSWIndex
from index.ivf import IVFIndex

KINDS: dict[str, type[Index]] = {"flat": FlatIndex, "ivf": IVFIndex, "hnsw": HNSWIndex}
FAISS_FILE = "faiss.index"


def build_index(encoder_spec: Any, index_spec: Any, dim: int, folder: Path | None = None) -> Index:
    """A fresh index (train it before adding, unless the encoder needs no training)."""
    spec = INDEX_SPEC.validate_python(index_spec) if isinstance(index_spec, dict) else index_spec
    return index_for(build_encoder(encoder_spec, dim), spec, folder)


def index_for(encoder: Encoder, spec: Any, folder: Path | None = None) -> Index:
    """A fresh index of kind spec.kind over an existing encoder."""
    return KINDS[spec.kind](encoder, spec, folder)


def save_index(index: Index, folder: Path) -> None:
    """Write encoder, FAISS structure, re-rank files and manifest (last) to `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    index.encoder.save(folder / "encoder")
    faiss_index = getattr(index, "faiss", None)
    if faiss_index is not None:
        tmp = folder / f".{FAISS_FILE}.tmp"
        faiss.write_index(faiss_index, str(tmp))
        _fsync(tmp)
        os.replace(tmp, folder / FAISS_FILE)
    if isinstance(index, HNSWIndex):
        save_npy(folder, {"hnsw_ids": index.ids, "hnsw_alive": index.alive})
    index.copy_rerank_to(folder)
    body = {"index_spec": INDEX_SPEC.dump_python(index.spec, mode="json"), "dim": index.dim}
    body["ntotal"] = index.ntotal
    body["has_faiss"] = faiss_index is not None
    write_manifest(folder, "index", body)


def load_index(folder: Path) -> Index:
    """The index saved in `folder`; its re-rank file stays memory-mapped in place."""
    folder = Path(folder)
    doc = read_manifest(folder, "index")
    spec = INDEX_SPEC.validate_python(doc["index_spec"])
    index = index_for(load_encoder(folder / "encoder"), spec, folder)
    if doc["has_faiss"]:
        index.faiss = faiss.read_index(str(folder / FAISS_FILE))  # type: ignore[attr-defined]
    if isinstance(index, HNSWIndex):
        arrays = load_npy(folder, ["hnsw_ids", "hnsw_alive"])
        index.ids = np.asarray(arrays["hnsw_ids"])
        index.alive = np.asarray(arrays["hnsw_alive"])
    return index


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
