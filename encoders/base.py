"""The Encoder interface: fit on a sample, encode to byte codes, decode, save/load.

Every encoder scores by inner product in its *score space*: `query_view(xq) @ decode(codes).T`
is the score a search computes (exactly, or as a sum of lookup-table entries).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import TypeAdapter

from core.arrays import as_matrix
from core.errors import NotTrained
from core.manifest import load_npy, read_manifest, save_npy, write_manifest
from encoders.spec import EncoderSpec

SPEC_ADAPTER: TypeAdapter[Any] = TypeAdapter(EncoderSpec)


class Encoder(ABC):
    """A vector encoder over (n, dim) float32 inputs."""

    kind: ClassVar[str]
    needs_training: ClassVar[bool] = False
    #: True when the score space is an isometric image of the input (identity, rotation,
    #: zero padding): exact scores can then be computed in score space from `isometry(x)`.
    isometric: ClassVar[bool] = False

    def __init__(self, spec: Any, dim: int) -> None:
        self.spec = spec
        self.dim = dim
        self.is_trained = not self.needs_training

    @property
    @abstractmethod
    def code_size(self) -> int:
        """Bytes per encoded vector."""

    @property
    def out_dim(self) -> int:
        """Dimension of the score space (of `decode` and `query_view`)."""
        return self.dim

    def check(self, x: object, name: str = "vectors") -> np.ndarray:
        """Validate input vectors for this encoder."""
        return as_matrix(x, self.dim, name=name)

    def require_trained(self) -> None:
        if not self.is_trained:
            raise NotTrained(f"{self.kind} encoder is not trained: call fit() first")

    def fit(self, x: np.ndarray) -> None:
        """Train on a sample (a no-op for encoders that need no training)."""
        self.check(x)
        self.is_trained = True

    @abstractmethod
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, dim) float32 -> (n, code_size) uint8."""

    @abstractmethod
    def decode(self, codes: np.ndarray) -> np.ndarray:
        """(n, code_size) uint8 -> (n, out_dim) float32 reconstruction in score space."""

    def isometry(self, x: np.ndarray) -> np.ndarray:
        """The isometric map into score space (only for encoders with `isometric`)."""
        return self.check(x)

    def query_view(self, xq: np.ndarray) -> np.ndarray:
        """Queries mapped into score space (ADC: transformed; SDC: encoded then decoded)."""
        return self.check(xq, "queries")

    def scores(self, xq: np.ndarray, codes: np.ndarray) -> np.ndarray:
        """Reference scores (nq, n) by brute force; indexes compute the same with tables."""
        return self.query_view(xq) @ self.decode(codes).T

    # persistence ---------------------------------------------------------------------------
    def state(self) -> dict[str, np.ndarray]:
        """Learned arrays to persist (none for stateless encoders)."""
        return {}

    def load_state(self, arrays: dict[str, np.ndarray]) -> None:  # noqa: B027 (optional hook)
        """Restore learned arrays written by `state`."""

    def state_names(self) -> list[str]:
        return []

    def save(self, folder: Path) -> None:
        """Write spec, dim, format version and learned arrays to `folder`."""
        folder = Path(folder)
        save_npy(folder, self.state())
        body = {
            "spec": SPEC_ADAPTER.dump_python(self.spec, mode="json"),
            "dim": self.dim,
            "is_trained": self.is_trained,
        }
        write_manifest(folder, "encoder", body)


def load_manifest_spec(folder: Path) -> tuple[Any, int, bool]:
    """(spec, dim, is_trained) from an encoder folder."""
    doc = read_manifest(Path(folder), "encoder")
    return SPEC_ADAPTER.validate_python(doc["spec"]), int(doc["dim"]), bool(doc["is_trained"])


def restore(encoder: Encoder, folder: Path, is_trained: bool) -> Encoder:
    """Load learned arrays into a freshly built encoder."""
    if is_trained and encoder.state_names():
        encoder.load_state(load_npy(Path(folder), encoder.state_names()))
    encoder.is_trained = is_trained
    return encoder


@runtime_checkable
class Codebooked(Protocol):
    """An encoder whose codes are PQ codes over a codebook in its score space, so FAISS PQ
    structures (IndexPQ, IVF-PQ, fast-scan) can hold and scan them with lookup tables."""

    out_dim: int
    code_size: int

    @property
    def nbits(self) -> int:
        """Bits per sub-quantizer code."""

    def codebooks(self) -> np.ndarray:
        """(m, 2**nbits, out_dim / m) centroids."""

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Data into the quantized space (the space of the codebooks)."""

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Codes in FAISS ProductQuantizer layout."""
