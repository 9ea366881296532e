"""The service: every collection under one data folder, by name.

Layout: <data>/collections/<name>/ (spec.json, store.sqlite, index/), <data>/snapshots/<name>/
(tarballs, kept when a collection is deleted), <data>/tmp/ (uploads). Hidden folders under
collections/ are in-flight creations, deletions or restores; start-up finishes or undoes them.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import threading
import time
import uuid
from pathlib import Path

from core.errors import Conflict, InvalidInput, NotFound
from server.service.collection import Collection
from server.service.embedders import Embedders
from server.service.engines import check_buildable
from server.service.errors import STARTED_READ_ONLY, ReadOnlyStorage
from server.service.opening import create_folder, fsync_dir, open_collection, read_spec
from server.service.options import Options
from server.service.snapshots import SnapshotInfo, extract_snapshot, list_snapshots, snapshot_path
from server.service.spec import CollectionSpec
from server.service.telemetry import Silent, Telemetry

log = logging.getLogger("pith.service")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
REPLACED = ".replaced-"


def read_only_dir(path: Path) -> bool:
    """Whether `path` (an existing data directory) cannot be written: a read-only mount
    (which binds root too) or no write permission."""
    if not path.is_dir():
        return False
    return bool(os.statvfs(path).f_flag & os.ST_RDONLY) or not os.access(path, os.W_OK)


def check_name(name: str) -> str:
    """A collection name: 1-64 of [A-Za-z0-9_-], starting with a letter or digit."""
    if not NAME_RE.match(name):
        raise InvalidInput(
            f"invalid collection name {name[:80]!r}: use 1-64 letters, digits, '_' or '-'"
        )
    return name


class Service:
    """Collections by name (see the module docstring)."""

    def __init__(
        self,
        data_dir: Path,
        options: Options | None = None,
        telemetry: Telemetry | None = None,
        embedders: Embedders | None = None,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "collections"
        self.snapshots_root = self.data_dir / "snapshots"
        self.tmp = self.data_dir / "tmp"
        self.read_only = read_only_dir(self.data_dir)
        if not self.read_only:
            for folder in (self.root, self.snapshots_root, self.tmp):
                folder.mkdir(parents=True, exist_ok=True)
        self.options = options or Options()
        self.telemetry = telemetry or Silent()
        self.embedders = embedders or Embedders()
        self._collections: dict[str, Collection] = {}
        self._lock = threading.RLock()
        self.failed: dict[str, str] = {}
        self.load_s: float | None = None
        self.ready = False

    # start and stop ----------------------------------------------------------------------
    def open_all(self) -> None:
        """Finish interrupted operations, then open every collection (one that cannot be
        opened is logged and left out, so the others still serve)."""
        start = time.perf_counter()
        if self.read_only:
            log.warning(
                "data directory %s is read-only: serving reads, refusing writes", self.data_dir
            )
        else:
            self._recover_folders()
        folders = self.root.iterdir() if self.root.is_dir() else iter(())
        for folder in sorted(p for p in folders if p.is_dir() and NAME_RE.match(p.name)):
            try:
                self._collections[folder.name] = self._open(folder)
            except Exception as exc:
                log.error("collection %s could not be opened: %s", folder.name, exc)
                self.failed[folder.name] = f"{type(exc).__name__}: {exc}"
        self.load_s = time.perf_counter() - start

    def _recover_folders(self) -> None:
        for path in self.root.iterdir():
            if not path.name.startswith("."):
                continue
            if path.name.startswith(REPLACED):  # a restore stopped between its two renames
                name = path.name[len(REPLACED) :].rsplit("-", 1)[0]
                if not (self.root / name).exists():
                    path.rename(self.root / name)
                    continue
            shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(self.tmp, ignore_errors=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        for partial in self.snapshots_root.glob("*/.*"):  # snapshots cut short by a crash
            if partial.is_dir():
                shutil.rmtree(partial, ignore_errors=True)
            else:
                partial.unlink(missing_ok=True)

    def _open(self, folder: Path) -> Collection:
        return open_collection(
            folder, self.options, self.telemetry, self.embedders, read_only=self.read_only
        )

    def _writable(self) -> None:
        if self.read_only:
            raise ReadOnlyStorage(STARTED_READ_ONLY)

    def close_all(self) -> None:
        with self._lock:
            collections, self._collections = list(self._collections.values()), {}
        for collection in collections:
            collection.close()

    # collections -------------------------------------------------------------------------
    def collections(self) -> list[Collection]:
        return list(self._collections.values())

    def names(self) -> list[str]:
        return sorted(self._collections)

    def get(self, name: str) -> Collection:
        """The open collection `name` (lock-free: safe to call on the event loop)."""
        collection = self._collections.get(check_name(name))
        if collection is None:
            raise NotFound(f"collection {name!r} not found")
        return collection

    def create(self, name: str, spec: CollectionSpec) -> tuple[Collection, bool]:
        """Create a collection; the same spec again is a no-op, another spec a conflict."""
        check_name(name)
        with self._lock:
            existing = self._collections.get(name)
            if existing is not None:
                if existing.spec.to_json() != spec.to_json():
                    raise Conflict(f"collection {name!r} exists with another spec")
                return existing, False
            self._writable()
            check_buildable(spec)
            folder = create_folder(self.root, name, spec)
            collection = self._open(folder)
            self._collections[name] = collection
            return collection, True

    def delete(self, name: str) -> None:
        with self._lock:
            collection = self.get(name)
            self._writable()
            del self._collections[name]
            collection.close(save=False)
            self._discard(self.root / name)

    def _discard(self, folder: Path) -> None:
        trash = self.root / f".deleted-{folder.name}-{uuid.uuid4().hex[:8]}"
        folder.rename(trash)
        fsync_dir(self.root)
        shutil.rmtree(trash, ignore_errors=True)

    # snapshots ---------------------------------------------------------------------------
    def snapshot_dir(self, name: str) -> Path:
        return self.snapshots_root / check_name(name)

    def list_snapshots(self, name: str) -> list[SnapshotInfo]:
        return list_snapshots(self.snapshot_dir(name))

    def snapshot_file(self, name: str, snapshot: str) -> Path:
        return snapshot_path(self.snapshot_dir(name), snapshot)

    def upload_path(self) -> Path:
        """A fresh temporary path for an uploaded tarball."""
        return self.tmp / f"upload-{uuid.uuid4().hex}.tar"

    def restore(self, name: str, tar_path: Path) -> Collection:
        """Replace (or create) collection `name` with the contents of a snapshot tarball."""
        check_name(name)
        self._writable()
        staging = self.root / f".restoring-{name}-{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            extract_snapshot(tar_path, staging)
            read_spec(staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        with self._lock:
            old = self._collections.pop(name, None)
            if old is not None:
                old.close(save=False)
            target = self.root / name
            replaced = self.root / f"{REPLACED}{name}-{uuid.uuid4().hex[:8]}"
            if target.exists():
                target.rename(replaced)
            staging.rename(target)
            fsync_dir(self.root)
            shutil.rmtree(replaced, ignore_errors=True)
            collection = self._open(target)
            self._collections[name] = collection
            return collection
