"""Build an encoder from its spec, or load one saved with `Encoder.save`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.errors import InvalidSpec
from encoders.base import SPEC_ADAPTER, Encoder, load_manifest_spec, restore
from encoders.identity import Float16Encoder, Float32Encoder
from encoders.pq import PQEncoder

REGISTRY: dict[str, type[Encoder]] = {
    "float32": Float32Encoder,
    "float16": Float16Encoder,
    "pq": PQEncoder,
}


def _register_optional() -> None:
    """Encoders in modules of their own (imported lazily: they pull in torch)."""
    from encoders.muvera import MuveraEncoder

    REGISTRY.setdefault("muvera", MuveraEncoder)
    from encoders.binary import BinaryEncoder

    REGISTRY.setdefault("binary", BinaryEncoder)


def build_encoder(spec: Any, dim: int) -> Encoder:
    """A fresh (untrained) encoder for `spec` over `dim`-dimensional inputs."""
    if isinstance(spec, dict):
        spec = SPEC_ADAPTER.validate_python(spec)
    if dim < 1:
        raise InvalidSpec(f"dimension must be positive, got {dim}")
    cls = _encoder_class(spec)
    if cls is None:
        raise InvalidSpec(f"unknown encoder kind {spec.kind!r}")
    return cls(spec, dim)


def _encoder_class(spec: Any) -> type[Encoder] | None:
    if spec.kind == "binary" and spec.method == "allocated":
        from encoders.binary_alloc import AllocatedBinaryEncoder

        return AllocatedBinaryEncoder
    if spec.kind not in REGISTRY:
        _register_optional()
    return REGISTRY.get(spec.kind)


def load_encoder(folder: Path) -> Encoder:
    """The encoder saved in `folder`, with its learned arrays."""
    spec, dim, is_trained = load_manifest_spec(Path(folder))
    return restore(build_encoder(spec, dim), Path(folder), is_trained)
