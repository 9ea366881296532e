"""One replica of one shard: a Ray actor around a single-node `Service` on its own data
folder, so a replica has exactly the durability of single-node pith (SQLite WAL store and
operation log, fsync before acknowledging). Domain errors come back as values (`Failed`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.ops import Ack, Failed, UpsertOp, WriteOp
from core.errors import PithError
from server.service.options import Options

if TYPE_CHECKING:  # loaded in __init__: importing this module stays light (see cluster.ops)
    from server.service.collection import Collection, Hit, Point, Query
    from server.service.filters import Filter


class ShardReplica:
    """A shard replica: opens its folder (its own store), a snapshot of a surviving
    replica (`restore`), or creates the collection empty."""

    def __init__(
        self, folder: str, name: str, spec_json: str, options: Options, restore: bytes | None
    ) -> None:
        from server.service.registry import Service
        from server.service.spec import CollectionSpec

        self.name = name
        self.service = Service(Path(folder), options)
        if restore is not None:
            with tempfile.NamedTemporaryFile(dir=self.service.tmp, suffix=".tar") as tar:
                tar.write(restore)
                tar.flush()
                self.service.restore(name, Path(tar.name))
        else:
            self.service.open_all()
            self.service.create(name, CollectionSpec.model_validate_json(spec_json))
        self.service.ready = True

    def _collection(self) -> Collection:
        return self.service.get(self.name)

    def ping(self) -> str:
        """The node this replica runs on."""
        import ray

        return str(ray.get_runtime_context().get_node_id())

    def write(self, op: WriteOp) -> Ack | Failed:
        try:
            collection = self._collection()
            if isinstance(op, UpsertOp):
                future = collection.upsert(op.keys, op.vectors, op.payloads, op.wait)
            else:
                future = collection.delete(op.keys, op.filter, op.wait)
            result = future.result()
        except PithError as exc:
            return Failed(exc)
        return Ack(result.seq, result.status, result.count)

    def search(self, query: Query) -> list[list[Hit]] | Failed:
        try:
            return self._collection().search(query)
        except PithError as exc:
            return Failed(exc)

    def get(self, key: str, with_vector: bool) -> Point | Failed:
        try:
            return self._collection().get(key, with_vector)
        except PithError as exc:
            return Failed(exc)

    def scroll(
        self, flt: Filter | None, after: int, limit: int, with_payload: bool, with_vectors: bool
    ) -> tuple[list[tuple[int, Point]], bool] | Failed:
        """Points after internal id `after` with their internal ids (`Collection.scroll`
        reports only the last one), and whether more follow."""
        import numpy as np

        from server.service.filters import select

        try:
            collection = self._collection()
            st = collection.st
            if flt is None:
                rows = st.store.page(after, limit + 1, with_payload, with_vectors)
            else:
                ids = select(flt, st.payloads)
                ids = ids[np.searchsorted(ids, after, side="right") :][: limit + 1]
                found = st.store.fetch(ids.tolist(), with_payload, with_vectors)
                rows = [found[i] for i in ids.tolist() if i in found]
        except PithError as exc:
            return Failed(exc)
        page = [(r.iid, collection._point(r)) for r in rows[:limit]]
        return page, len(rows) > limit

    def count(self, flt: Filter | None) -> int | Failed:
        try:
            return self._collection().count(flt)
        except PithError as exc:
            return Failed(exc)

    def info(self) -> dict[str, Any]:
        return self._collection().info()

    def train(self) -> str | Failed:
        try:
            return self._collection().train().result()
        except PithError as exc:
            return Failed(exc)

    def training_state(self) -> str:
        return str(self._collection().st.training.state)

    def snapshot(self) -> bytes:
        """A consistent tarball of this replica (taken on its writer thread, so it holds
        every write this replica acknowledged before the call)."""
        self.service.tmp.mkdir(parents=True, exist_ok=True)
        target = Path(tempfile.mkdtemp(dir=self.service.tmp))
        try:
            path = self._collection().snapshot(target).result()
            return path.read_bytes()
        finally:
            shutil.rmtree(target, ignore_errors=True)

    def close(self, drop: bool) -> None:
        """Close the collection; `drop` also deletes this replica's folder."""
        self.service.close_all()
        if drop:
            shutil.rmtree(self.service.data_dir, ignore_errors=True)
