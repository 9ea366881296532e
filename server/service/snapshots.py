"""Collection snapshots: one uncompressed tarball holding the spec, a consistent copy of the
store (SQLite online backup) and a checkpoint of the index at the same log position.

A snapshot unpacks into exactly a collection folder: restoring is extracting it (members
checked by tarfile's "data" filter: no absolute paths, no `..`, no links out) and opening it.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.errors import InvalidInput, NotFound
from server.service.checkpoint import IndexFolder, fsync_tree
from server.service.errors import DiskFull
from server.service.state import CollectionState
from server.service.store import disk_errors, storage_error

SPEC_FILE = "spec.json"
STORE_FILE = "store.sqlite"
INDEX_DIR = "index"
SNAPSHOT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}\.tar$")


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    size_bytes: int
    created_at: float


def write_snapshot(st: CollectionState, target: Path) -> Path:
    """Write `<target>/<name>-<utc time>.tar` (on the writer thread: store and index agree)."""
    target.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime()) + f"{time.time() % 1:.6f}"[1:]
    staging = target / f".staging-{stamp}"
    tmp = target / f".{st.name}-{stamp}.tar.tmp"
    try:
        staging.mkdir()
        shutil.copy2(st.folder / SPEC_FILE, staging / SPEC_FILE)
        live = st.live
        IndexFolder(staging / INDEX_DIR).write(live.engine, live.seq, live.next_iid, live.trained)
        st.store.backup(staging / STORE_FILE)
        fsync_tree(staging)
        path = target / f"{st.name}-{stamp}.tar"
        with tarfile.open(tmp, "w") as tar:
            for item in sorted(staging.iterdir()):
                tar.add(item, arcname=item.name)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return path
    except OSError as exc:
        err = storage_error(exc, "writing a snapshot")
        if err is not None:
            raise err from exc
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        tmp.unlink(missing_ok=True)


def list_snapshots(folder: Path) -> list[SnapshotInfo]:
    """Snapshots in a folder, oldest first."""
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if SNAPSHOT_RE.match(p.name)]
    infos = [SnapshotInfo(p.name, p.stat().st_size, p.stat().st_mtime) for p in found]
    return sorted(infos, key=lambda s: (s.created_at, s.name))


def snapshot_path(folder: Path, name: str) -> Path:
    """The path of an existing snapshot (names are checked: no path traversal)."""
    if not SNAPSHOT_RE.match(name):
        raise InvalidInput(f"invalid snapshot name {name[:80]!r}")
    path = folder / name
    if not path.is_file():
        raise NotFound(f"snapshot {name!r} not found")
    return path


def extract_snapshot(tar_path: Path, dest: Path) -> None:
    """Unpack a snapshot into `dest` (a new folder), refusing anything but the expected files."""
    try:
        with tarfile.open(tar_path, "r:") as tar:
            for member in tar.getmembers():
                top = member.name.split("/", 1)[0]
                if top not in (SPEC_FILE, STORE_FILE, INDEX_DIR):
                    raise InvalidInput(f"snapshot: unexpected member {member.name[:80]!r}")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError, EOFError) as exc:
        if disk_errors(exc):
            raise DiskFull("disk full while restoring a snapshot") from exc
        raise InvalidInput(f"snapshot: not a readable tarball ({exc})") from exc
    for name in (SPEC_FILE, STORE_FILE, INDEX_DIR):
        if not (dest / name).exists():
            raise InvalidInput(f"snapshot: {name} missing")
