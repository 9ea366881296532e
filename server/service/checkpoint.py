"""Index generations of one collection: index/gen-NNNNNN folders and index/checkpoint.json.

A checkpoint saves the live index into a fresh generation folder, fsyncs it, then atomically
replaces checkpoint.json (generation, kind, last applied sequence number, next internal id).
Checkpointed generations are never written again: start-up copies one into a new live
generation and loads that, so a crash at any moment leaves the last checkpoint intact.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import threading
from dataclasses import asdict, dataclass
from pathlib import Path

from core.errors import CorruptData
from core.manifest import atomic_write_bytes
from server.service.engines import CollectionIndex, load_engine
from server.service.spec import CollectionSpec

CHECKPOINT_FILE = "checkpoint.json"
FORMAT_VERSION = 1
PREFIX = "gen-"


@dataclass(frozen=True)
class Checkpoint:
    """What a checkpoint names: the index saved after applying every op up to `seq`."""

    generation: str
    kind: str
    seq: int
    next_iid: int
    trained: bool


def fsync_tree(folder: Path) -> None:
    """fsync every file and directory under `folder` (copies are not synced by copytree)."""
    for root, _, files in os.walk(folder):
        for name in files:
            _fsync(Path(root) / name)
        _fsync(Path(root))


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class IndexFolder:
    """Allocates generation folders, writes and reads checkpoints, prunes unused generations."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._in_use: set[str] = set()

    def allocate(self) -> Path:
        """A new, empty generation folder, held in use until `release`."""
        with self._lock:
            numbers = [int(p.name[len(PREFIX) :]) for p in self.root.glob(f"{PREFIX}*")]
            name = f"{PREFIX}{max(numbers, default=0) + 1:06d}"
            (self.root / name).mkdir()
            self._in_use.add(name)
            return self.root / name

    def release(self, folder: Path) -> None:
        with self._lock:
            self._in_use.discard(Path(folder).name)

    def read(self) -> Checkpoint | None:
        return self.read_in(self.root)

    @staticmethod
    def read_in(root: Path) -> Checkpoint | None:
        """The checkpoint named in `root` (None if there is none yet)."""
        path = root / CHECKPOINT_FILE
        if not path.exists():
            return None
        try:
            doc = json.loads(path.read_text())
            if doc.pop("format_version") != FORMAT_VERSION:
                raise ValueError("unsupported format version")
            return Checkpoint(**doc)
        except (OSError, ValueError, TypeError, KeyError) as exc:
            raise CorruptData(f"{path}: unreadable checkpoint ({exc})") from exc

    def write(self, engine: CollectionIndex, seq: int, next_iid: int, trained: bool) -> Checkpoint:
        """Save `engine` into a new generation and name it in checkpoint.json."""
        folder = self.allocate()
        try:
            engine.save(folder)
            fsync_tree(folder)
            ckpt = Checkpoint(folder.name, engine.kind, seq, next_iid, trained)
            doc = {"format_version": FORMAT_VERSION, **asdict(ckpt)}
            atomic_write_bytes(self.root / CHECKPOINT_FILE, json.dumps(doc).encode())
            _fsync(self.root)
            return ckpt
        finally:
            self.release(folder)

    def open_live(
        self, ckpt: Checkpoint, spec: CollectionSpec, move: bool = False
    ) -> tuple[CollectionIndex, Path]:
        """A private, writable copy of the checkpointed generation, loaded (held in use);
        `move`: the generation itself, renamed (a scratch copy that is read only once)."""
        live = self.allocate()
        if move:
            live.rmdir()
            os.rename(self.root / ckpt.generation, live)
        else:
            shutil.copytree(self.root / ckpt.generation, live, dirs_exist_ok=True)
        return load_engine(ckpt.kind, live, spec), live

    def prune(self, checkpoint: Checkpoint | None) -> None:
        """Remove generations neither checkpointed nor in use (crash leftovers included)."""
        with self._lock:
            keep = set(self._in_use)
            if checkpoint is not None:
                keep.add(checkpoint.generation)
            stale = [p for p in self.root.glob(f"{PREFIX}*") if p.name not in keep]
        for path in stale:
            shutil.rmtree(path, ignore_errors=True)


SCRATCH_PREFIX = "pith-read-only-"


def scratch_copy(index_root: Path) -> Path:
    """A writable copy of the checkpoint of a read-only index folder, in the temp directory
    (named after this process, see `reap_scratch`); `remove_scratch` removes it."""
    reap_scratch(Path(tempfile.gettempdir()))
    made = tempfile.mkdtemp(prefix=f"{SCRATCH_PREFIX}{os.getpid()}-")
    scratch = Path(made) / index_root.name
    scratch.mkdir()
    ckpt = IndexFolder.read_in(index_root)
    if ckpt is not None:
        shutil.copy2(index_root / CHECKPOINT_FILE, scratch / CHECKPOINT_FILE)
        shutil.copytree(index_root / ckpt.generation, scratch / ckpt.generation)
    return scratch


def remove_scratch(scratch: Path) -> None:
    """Remove a `scratch_copy` with the temporary folder made for it."""
    shutil.rmtree(scratch.parent, ignore_errors=True)


def reap_scratch(temp_dir: Path) -> list[Path]:
    """Remove the scratch copies left in `temp_dir` by processes that are gone (a search
    process killed with -9 cannot remove its own); returns what was removed."""
    reaped = []
    for path in temp_dir.glob(f"{SCRATCH_PREFIX}*-*"):
        pid = path.name.removeprefix(SCRATCH_PREFIX).split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
            reaped.append(path)
    return reaped


def _alive(pid: int) -> bool:
    """Whether process `pid` exists (another user's counts: only its owner may signal it)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return True
