"""Small JSON records on disk (cluster layout, a shard's replica folders): written whole to
a temporary file, fsynced, renamed over the old one, the folder fsynced; a format version."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

FORMAT = 1


def write_record(path: Path, body: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w") as f:
        json.dump({"format": FORMAT, **body}, f, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_record(path: Path) -> dict[str, Any] | None:
    """The record, or None when there is none; another format version is an error."""
    if not path.is_file():
        return None
    body: dict[str, Any] = json.loads(path.read_text())
    if body.get("format") != FORMAT:
        raise ValueError(f"{path}: format {body.get('format')!r}, expected {FORMAT}")
    return body
