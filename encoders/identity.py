"""float32 / float16 identity encoders: the exact baseline and the re-rank store format."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from core.arrays import as_matrix
from core.errors import InvalidInput
from encoders.base import Encoder
from encoders.spec import Float16Spec, Float32Spec

FLOAT16_MAX = 65504.0


class _Identity(Encoder):
    dtype: ClassVar[type[np.floating]]
    isometric = True

    @property
    def code_size(self) -> int:
        return self.dim * np.dtype(self.dtype).itemsize

    def encode(self, x: np.ndarray) -> np.ndarray:
        x = self.check(x)
        return np.ascontiguousarray(x.astype(self.dtype)).view(np.uint8)

    def decode(self, codes: np.ndarray) -> np.ndarray:
        codes = np.ascontiguousarray(codes, dtype=np.uint8).reshape(-1, self.code_size)
        return codes.view(self.dtype).astype(np.float32)


class Float32Encoder(_Identity):
    kind = "float32"
    dtype = np.float32

    def __init__(self, spec: Float32Spec, dim: int) -> None:
        super().__init__(spec, dim)


class Float16Encoder(_Identity):
    kind = "float16"
    dtype = np.float16

    def __init__(self, spec: Float16Spec, dim: int) -> None:
        super().__init__(spec, dim)

    def check(self, x: object, name: str = "vectors") -> np.ndarray:
        x = as_matrix(x, self.dim, name=name)
        if x.size and np.abs(x).max() > FLOAT16_MAX:
            raise InvalidInput(f"{name}: values beyond the float16 range (|x| > {FLOAT16_MAX})")
        return x
