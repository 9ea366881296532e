"""A collection's inputs: raw vectors or texts validated into the stored form, by its spec.
Shared by the single-node `Collection` and the cluster's `ClusterCollection`."""

from __future__ import annotations

from core.errors import InvalidInput
from server.service.embedders import Embedders
from server.service.spec import CollectionSpec
from server.service.vectors import Vectors, prepare


def spec_vectors(
    spec: CollectionSpec, data: object, offsets: object | None, name: str = "vectors"
) -> Vectors:
    """Validate raw vectors (or packed token vectors) into the stored form."""
    if spec.multivector and offsets is None:
        raise InvalidInput(f"{name}: this collection holds multi-vectors (token matrices)")
    if not spec.multivector and offsets is not None:
        raise InvalidInput(f"{name}: this collection holds single vectors, not token matrices")
    return prepare(data, spec.dim, offsets, spec.metric == "cosine", name)


def spec_embed(
    spec: CollectionSpec, embedders: Embedders, collection: str, texts: list[str], name: str
) -> Vectors:
    """Texts -> vectors with the collection's embedder (pooled, or tokens if multi)."""
    embedder = spec.embedder
    if embedder is None:
        raise InvalidInput(f"{name}: collection {collection!r} has no embedder; send vectors")
    if any(not t.strip() for t in texts):
        raise InvalidInput(f"{name}: empty text")
    if spec.multivector:
        data, offsets = embedders.tokens(embedder, texts)
        return spec_vectors(spec, data, offsets, name)
    return spec_vectors(spec, embedders.pooled(embedder, texts), None, name)
