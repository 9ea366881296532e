"""Create a collection on disk (atomically: built in a hidden folder, then renamed) and open
one: read its spec, rebuild the payload index, load the last checkpoint, replay the log."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from core.errors import CorruptData
from core.manifest import atomic_write_bytes, library_versions
from server.service.checkpoint import IndexFolder, scratch_copy
from server.service.collection import Collection
from server.service.embedders import Embedders
from server.service.engines import initial_engine
from server.service.live import LiveIndex
from server.service.options import Options
from server.service.payloads import PayloadIndex
from server.service.replay import catch_up
from server.service.snapshots import INDEX_DIR, SPEC_FILE, STORE_FILE
from server.service.spec import CollectionSpec
from server.service.state import CollectionState, Training
from server.service.store import Store, storage_error
from server.service.telemetry import Silent, Telemetry

FORMAT_VERSION = 1


def write_spec(folder: Path, name: str, spec: CollectionSpec) -> None:
    doc = {
        "kind": "collection",
        "format_version": FORMAT_VERSION,
        "versions": library_versions(),
        "name": name,
        "spec": spec.to_json(),
    }
    atomic_write_bytes(folder / SPEC_FILE, json.dumps(doc, indent=1).encode())


def read_spec(folder: Path) -> CollectionSpec:
    path = folder / SPEC_FILE
    try:
        doc = json.loads(path.read_text())
        if doc.get("kind") != "collection" or doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"not a collection spec of format {FORMAT_VERSION}")
        return CollectionSpec.model_validate(doc["spec"])
    except (OSError, ValueError, KeyError) as exc:
        raise CorruptData(f"{path}: unreadable collection spec ({exc})") from exc


def create_folder(root: Path, name: str, spec: CollectionSpec) -> Path:
    """Build the files of an empty collection and rename them into place as `root/name`."""
    staging = root / f".creating-{name}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir(parents=True)
        write_spec(staging, name, spec)
        Store(staging / STORE_FILE).close()
        index_folder = IndexFolder(staging / INDEX_DIR)
        trained = not spec.needs_training
        index_folder.write(initial_engine(spec, index_folder.allocate()), 0, 0, trained)
        os.replace(staging, root / name)
        fsync_dir(root)
    except BaseException as exc:
        shutil.rmtree(staging, ignore_errors=True)
        err = storage_error(exc, f"creating collection {name!r}")
        if err is not None:
            raise err from exc
        raise
    return root / name


def fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def open_collection(
    folder: Path,
    options: Options | None = None,
    telemetry: Telemetry | None = None,
    embedders: Embedders | None = None,
    read_only: bool = False,
    shared: bool = False,
) -> Collection:
    """Open a collection folder: checkpoint loaded, log replayed, writer started. On a
    read-only data directory the index works from a scratch copy and writes are refused;
    `shared` (with read_only): another process writes the folder meanwhile (a follower)."""
    spec = read_spec(folder)
    store = Store(folder / STORE_FILE, read_only=read_only, shared=shared)
    try:
        payloads = PayloadIndex()
        with store.snapshot() as conn:
            payloads.add_many(Store.payloads(conn))
        index_root = scratch_copy(folder / INDEX_DIR) if read_only else folder / INDEX_DIR
        live, index_folder, ckpt = _load_index(index_root, spec, store, scratch=read_only)
    except BaseException:
        store.close()
        raise
    state = "trained" if live.trained else "untrained"
    st = CollectionState(
        name=folder.name,
        spec=spec,
        folder=folder,
        store=store,
        payloads=payloads,
        live=live,
        index_folder=index_folder,
        checkpoint=ckpt,
        training=Training(state),
        options=options or Options(),
        telemetry=telemetry or Silent(),
        embedders=embedders or Embedders(),
    )
    return Collection(st)


def _load_index(index_root: Path, spec: CollectionSpec, store: Store, scratch: bool):  # type: ignore[no-untyped-def]
    index_folder = IndexFolder(index_root)
    ckpt = index_folder.read()
    index_folder.prune(ckpt)
    if ckpt is None:
        live_folder = index_folder.allocate()
        engine, seq, next_iid, trained = (
            initial_engine(spec, live_folder),
            0,
            0,
            not spec.needs_training,
        )
    else:
        # a scratch copy's checkpoint is read once: its files become the live ones
        engine, live_folder = index_folder.open_live(ckpt, spec, move=scratch)
        seq, next_iid, trained = ckpt.seq, ckpt.next_iid, ckpt.trained
    with store.snapshot() as conn:
        counters = catch_up(engine, conn, spec, seq, next_iid)
    live = LiveIndex(engine, live_folder, trained, counters.last_seq, counters.next_iid)
    return live, index_folder, ckpt
