"""Versioned manifests and array files: JSON + .npy (never pickle), written atomically."""

from __future__ import annotations

import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import CorruptData

FORMAT_VERSION = 1
_LIBRARIES = ("pith", "numpy", "faiss-cpu", "torch")


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced an artifact, saved next to it."""
    out = {}
    for name in _LIBRARIES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a fsynced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest(folder: Path, kind: str, body: dict[str, Any]) -> None:
    """`folder/manifest.json` with kind, format version and library versions."""
    doc = {"kind": kind, "format_version": FORMAT_VERSION, "versions": library_versions(), **body}
    atomic_write_bytes(folder / "manifest.json", json.dumps(doc, indent=1).encode())


def read_manifest(folder: Path, kind: str) -> dict[str, Any]:
    """The manifest of `folder`, checked for kind and a known format version."""
    path = folder / "manifest.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise CorruptData(f"{path}: unreadable manifest ({exc})") from exc
    if doc.get("kind") != kind:
        raise CorruptData(f"{path}: expected a {kind!r} manifest, found {doc.get('kind')!r}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise CorruptData(f"{path}: unsupported format version {doc.get('format_version')!r}")
    return doc


def save_npy(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Each array to folder/<name>.npy, fsynced."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in arrays.items():
        path = folder / f"{name}.npy"
        with open(path, "wb") as f:
            np.save(f, np.ascontiguousarray(arr), allow_pickle=False)
            f.flush()
            os.fsync(f.fileno())


def load_npy(folder: Path, names: list[str], mmap: bool = False) -> dict[str, np.ndarray]:
    """The named arrays of `folder`, optionally memory-mapped."""
    out = {}
    for name in names:
        path = folder / f"{name}.npy"
        try:
            out[name] = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise CorruptData(f"{path}: unreadable array ({exc})") from exc
    return out
