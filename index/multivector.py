"""Multi-vector search: MUVERA FDE candidates from a single-vector index, then an exact Chamfer
re-rank with the documents' tokens read from a memory-mapped float16 token store.

    MultiVectorIndex = MuveraEncoder (point clouds -> FDEs)
                     + inner `Index` of any kind over the FDEs (holds the inner encoder's codes)
                     + TokenFile (float16 tokens on disk, for the re-rank)

Folder layout: manifest.json, encoder/ (the MUVERA encoder, inner encoder state included),
fde/ (the inner index, as `save_index` writes it), tokens/ (the token store).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from core.arrays import as_ids, pack_multivectors
from core.errors import InvalidInput, InvalidSpec, NotTrained
from core.manifest import load_npy, read_manifest, write_manifest
from encoders.base import SPEC_ADAPTER, load_manifest_spec, restore
from encoders.muvera import MuveraEncoder
from encoders.spec import MuveraSpec
from index.base import INDEX_SPEC, MAX_K, Index, SearchResult, temp_folder
from index.factory import FAISS_FILE, index_for, save_index
from index.hnsw import HNSWIndex
from index.spec import SearchParams
from index.tokens import TokenFile
from kernels.chamfer import chamfer_rerank

MANIFEST_KIND = "multivector_index"
ADD_BATCH = 4096  # documents encoded per step of add()


class MultiVectorIndex:
    """Chamfer search over multi-vector documents under int64 ids (see the module docstring)."""

    def __init__(self, encoder: MuveraEncoder, index_spec: Any, folder: Path | None = None) -> None:
        spec = (
            INDEX_SPEC.validate_python(index_spec) if isinstance(index_spec, dict) else index_spec
        )
        if spec.rerank.enabled:
            raise InvalidSpec(
                "multi-vector index: the inner FDE index re-ranks by Chamfer, not FDE"
            )
        self.encoder = encoder
        self.dim = encoder.dim
        self.folder = Path(folder) if folder is not None else temp_folder(self, "pith-mv-")
        self.inner: Index = index_for(encoder.inner, spec, self.folder / "fde")
        self.tokens = TokenFile(self.folder / "tokens", encoder.dim)

    @property
    def ntotal(self) -> int:
        return self.inner.ntotal

    @property
    def is_trained(self) -> bool:
        return self.inner.is_trained

    def train(self, docs: object) -> None:
        """Train the inner index (and its encoder) on the documents' FDEs."""
        self.inner.train(self.encoder.encode_documents(self._check(docs)))

    def add(self, ids: object, docs: object) -> None:
        """Add documents under int64 ids (an id already present is the caller's to remove)."""
        clouds = self._check(docs)
        ids = as_ids(ids, len(clouds))
        if not self.is_trained:
            raise NotTrained("multi-vector index: train() before add()")
        for s in range(0, len(clouds), ADD_BATCH):  # bounds the float FDEs held at once
            tokens, offsets = pack_multivectors(clouds[s : s + ADD_BATCH])
            fdes = self.encoder.encode_packed(tokens, offsets, is_query=False)
            self.tokens.append(ids[s : s + ADD_BATCH], tokens, offsets)
            self.inner.add(ids[s : s + ADD_BATCH], fdes)

    def remove(self, ids: object) -> int:
        """Remove ids (FDE codes dropped, tokens tombstoned); returns how many were present."""
        ids = as_ids(ids)
        if len(ids) == 0:
            return 0
        removed = self.inner.remove(ids)
        self.tokens.remove(ids)
        return removed

    def _check(self, docs: object, name: str = "documents") -> list[np.ndarray]:
        return self.encoder.check(docs, name)

    # search --------------------------------------------------------------------------------
    def candidates(
        self,
        queries: object,
        n: int,
        params: SearchParams | None = None,
        allowed: object | None = None,
    ) -> SearchResult:
        """The n best ids per query by FDE score alone (no re-rank)."""
        if not 1 <= n <= MAX_K:
            raise InvalidInput(f"candidates must be in [1, {MAX_K}], got {n}")
        if not self.is_trained:
            raise NotTrained("multi-vector index is not trained")
        fdes = self.encoder.encode_queries(self._check(queries, "queries"))
        return self.inner.search(fdes, n, params=params, allowed=allowed)

    def search(
        self,
        queries: object,
        k: int,
        candidates: int = 100,
        params: SearchParams | None = None,
        allowed: object | None = None,
    ) -> SearchResult:
        """Top-k per query by exact Chamfer score among the best `candidates` by FDE score;
        `allowed` restricts both stages to those ids. Scores are Chamfer sums (larger is better)."""
        if not 1 <= k <= MAX_K:
            raise InvalidInput(f"k must be in [1, {MAX_K}], got {k}")
        clouds = self._check(queries, "queries")
        if not clouds:
            return SearchResult(np.zeros((0, k), np.float32), np.zeros((0, k), np.int64))
        cand = self.candidates(clouds, max(k, candidates), params, allowed).ids
        starts, lengths = self.tokens.locate(cand)
        lengths = np.where(cand >= 0, lengths, 0)
        q_tokens, q_offsets = pack_multivectors(clouds)
        tokens = self.tokens.tokens
        scores, ids = chamfer_rerank(q_tokens, q_offsets, cand, starts, lengths, tokens, k)
        return SearchResult(scores, ids)

    # accounting ----------------------------------------------------------------------------
    def bytes_in_ram(self) -> int:
        """FDE codes, ids and index structures, the FDE matrices, and any id -> record map
        (the token file itself is disk)."""
        matrices = sum(a.nbytes for a in self.encoder.own_state().values())
        return self.inner.bytes_in_ram() + int(matrices) + self.tokens.bytes_in_ram()

    def bytes_on_disk(self) -> int:
        """The token store (what the re-rank reads from disk instead of RAM)."""
        return self.tokens.bytes_on_disk() + self.inner.bytes_on_disk()

    # persistence ---------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        """Write encoder, inner index, token store and the manifest (last) to `folder`."""
        folder = Path(folder)
        self.encoder.save(folder / "encoder")
        save_index(self.inner, folder / "fde")
        self.tokens.flush()
        if (folder / "tokens").resolve() != self.tokens.folder.resolve():
            _copy_tokens(self.tokens, folder / "tokens")
        body = {
            "index_spec": INDEX_SPEC.dump_python(self.inner.spec, mode="json"),
            "encoder_spec": SPEC_ADAPTER.dump_python(self.encoder.spec, mode="json"),
            "dim": self.dim,
            "ntotal": self.ntotal,
        }
        write_manifest(folder, MANIFEST_KIND, body)


def build_multivector_index(
    spec: MuveraSpec | dict[str, Any], index_spec: Any, dim: int, folder: Path | None = None
) -> MultiVectorIndex:
    """A fresh multi-vector index over `dim`-dimensional tokens."""
    if isinstance(spec, dict):
        spec = MuveraSpec.model_validate(spec)
    return MultiVectorIndex(MuveraEncoder(spec, dim), index_spec, folder)


def load_multivector_index(folder: Path) -> MultiVectorIndex:
    """The index saved in `folder`; its token store stays memory-mapped in place."""
    folder = Path(folder)
    doc = read_manifest(folder, MANIFEST_KIND)
    spec, dim, is_trained = load_manifest_spec(folder / "encoder")
    if not isinstance(spec, MuveraSpec) or dim != doc["dim"]:
        raise InvalidSpec(f"{folder}: encoder is not the MUVERA encoder of this index")
    encoder = restore(MuveraEncoder(spec, dim), folder / "encoder", is_trained)
    assert isinstance(encoder, MuveraEncoder)
    index = MultiVectorIndex(encoder, doc["index_spec"], folder)
    _load_inner(index.inner, folder / "fde")
    return index


def _load_inner(inner: Index, folder: Path) -> None:
    """FAISS structures of the inner index saved by `save_index` (its encoder is ours)."""
    doc = read_manifest(folder, "index")
    if doc["has_faiss"]:
        inner.faiss = faiss.read_index(str(folder / FAISS_FILE))  # type: ignore[attr-defined]
    if isinstance(inner, HNSWIndex):
        arrays = load_npy(folder, ["hnsw_ids", "hnsw_alive"])
        inner.ids = np.asarray(arrays["hnsw_ids"])
        inner.alive = np.asarray(arrays["hnsw_alive"])


def _copy_tokens(store: TokenFile, target: Path) -> None:
    shutil.copytree(store.folder, target, dirs_exist_ok=True)
