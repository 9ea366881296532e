"""Pluggable vector encoders: float32/float16, pq (OPQ, RepCONC balanced codebooks),
binary (BEBR recurrent binarization, SDC tables) and muvera (fixed-dimensional encodings)."""

from encoders.base import Codebooked, Encoder
from encoders.factory import build_encoder, load_encoder
from encoders.spec import (
    BinarySpec,
    EncoderSpec,
    Float16Spec,
    Float32Spec,
    MuveraSpec,
    PQSpec,
)

__all__ = [
    "BinarySpec",
    "Codebooked",
    "Encoder",
    "EncoderSpec",
    "Float16Spec",
    "Float32Spec",
    "MuveraSpec",
    "PQSpec",
    "build_encoder",
    "load_encoder",
]
