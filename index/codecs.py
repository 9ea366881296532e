"""How each encoder's codes live in FAISS structures, and how their RAM is counted."""

from __future__ import annotations

import faiss
import numpy as np

from core.errors import InvalidSpec
from encoders.base import Codebooked, Encoder
from encoders.identity import Float16Encoder, Float32Encoder

METRICS = {"ip": faiss.METRIC_INNER_PRODUCT, "l2": faiss.METRIC_L2}


def faiss_metric(metric: str) -> int:
    return int(METRICS[metric])


def is_float(encoder: Encoder) -> bool:
    return isinstance(encoder, Float32Encoder | Float16Encoder)


def exact_codes(encoder: Encoder) -> bool:
    """True when FAISS, given the codebooks, computes the encoder's own codes (nearest centroid)."""
    return bool(getattr(encoder, "nearest_centroid_codes", False))


def install_codebooks(pq: faiss.ProductQuantizer, books: np.ndarray) -> None:
    """Copy (m, ksub, dsub) centroids into a FAISS ProductQuantizer."""
    faiss.copy_array_to_vector(np.ascontiguousarray(books, dtype=np.float32).ravel(), pq.centroids)
    pq.sync_transposed_centroids()


def flat_index(encoder: Encoder, metric: str) -> faiss.Index:
    """An exhaustive FAISS index holding this encoder's codes.

    Float codes live in an IndexIDMap over IndexFlat / IndexScalarQuantizer(fp16). PQ codes
    live in an IVF-PQ with a single list (IndexPQ cannot apply an id filter inside its scan;
    a one-list IVF scans the same lookup tables and can).
    """
    mt = faiss_metric(metric)
    if isinstance(encoder, Float32Encoder):
        return faiss.IndexIDMap(faiss.IndexFlat(encoder.dim, mt))
    if isinstance(encoder, Float16Encoder):
        qt = faiss.ScalarQuantizer.QT_fp16
        return faiss.IndexIDMap(faiss.IndexScalarQuantizer(encoder.dim, qt, mt))
    if isinstance(encoder, Codebooked):
        quantizer = faiss.IndexFlat(encoder.out_dim, mt)
        quantizer.add(np.zeros((1, encoder.out_dim), dtype=np.float32))
        m = encoder.codebooks().shape[0]
        index = faiss.IndexIVFPQ(quantizer, encoder.out_dim, 1, m, encoder.nbits, mt)
        index.own_fields = True
        quantizer.this.disown()
        index.by_residual = False
        install_codebooks(index.pq, encoder.codebooks())
        index.is_trained = True
        return index
    raise InvalidSpec(f"no flat index for encoder {encoder.kind!r}")


def add_codes(index: faiss.Index, encoder: Encoder, ids: np.ndarray, x: np.ndarray) -> None:
    """Encode x with the encoder and store the codes under ids in a `flat_index`."""
    if is_float(encoder):
        index.add_with_ids(x, ids)
    else:
        add_to_lists(index, np.zeros(len(ids), dtype=np.int64), ids, encoder.encode(x))


def add_to_lists(
    index: faiss.IndexIVF, lists: np.ndarray, ids: np.ndarray, codes: np.ndarray
) -> None:
    """Append precomputed codes (FAISS's flat code layout) to the given inverted lists of an IVF
    index; fast-scan lists take them packed in their 32-row blocks."""
    invlists = faiss.downcast_InvertedLists(index.invlists)
    blocked = isinstance(invlists, faiss.BlockInvertedLists)
    for list_no in np.unique(lists):
        sel = np.flatnonzero(lists == list_no)
        sub_codes = np.ascontiguousarray(codes[sel], dtype=np.uint8)
        if blocked:
            sub_codes = pack_blocks(invlists, sub_codes)
        sub_ids = np.ascontiguousarray(ids[sel], dtype=np.int64)
        invlists.add_entries(
            int(list_no), len(sel), faiss.swig_ptr(sub_ids), faiss.swig_ptr(sub_codes)
        )
    index.ntotal += len(ids)


def pack_blocks(invlists: faiss.BlockInvertedLists, codes: np.ndarray) -> np.ndarray:
    """Flat 4-bit PQ codes -> the fast-scan block layout (last block zero-padded)."""
    per, size = invlists.n_per_block, invlists.block_size
    blocks = -(-len(codes) // per)
    flat = np.zeros((blocks * per, codes.shape[1]), dtype=np.uint8)
    flat[: len(codes)] = codes
    packed = np.zeros(blocks * size, dtype=np.uint8)
    for b in range(blocks):
        invlists.packer.pack_all(
            faiss.swig_ptr(flat[b * per : (b + 1) * per]), faiss.swig_ptr(packed[b * size :])
        )
    return packed


def vector_bytes(vec: object) -> int:
    """Bytes of a FAISS std::vector."""
    return int(faiss.vector_to_array(vec).nbytes) if vec is not None else 0


def encoder_bytes(encoder: Encoder) -> int:
    """RAM of the encoder's learned parameters (codebooks, rotations, MLP weights)."""
    return int(sum(a.nbytes for a in encoder.state().values()))
