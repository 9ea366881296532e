"""Followers (server/service/follower.py): a read-only copy of a collection, in what stands
for another process (its own open of the same folder), kept up with the writer through the
files alone: the log replayed, a newer checkpoint reloaded, a training swap picked up, and
every read of a search pinned to the state it caught up to, and the scratch copy of one
killed with -9 removed by the next one opened."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from server_helpers import FAST_PQ, unit_rows

from server.service.collection import Collection, Query
from server.service.filters import parse_filter
from server.service.follower import Follower
from server.service.options import Options
from server.service.registry import Service
from server.service.spec import CollectionSpec

DIM = 16
FLAT = {"dim": DIM, "metric": "cosine", "index": {"kind": "flat"}}


def open_service(data: Path, **options: object) -> Service:
    service = Service(data, Options(checkpoint_idle_s=3600, **options))  # type: ignore[arg-type]
    service.open_all()
    return service


def upsert(c: Collection, x: np.ndarray, ids: range, **payload: object) -> None:
    keys = [str(i) for i in ids]
    rows: list[dict[str, Any] | None] = [{"i": i, **payload} for i in ids]
    c.upsert(keys, c.vectors(x[list(ids)]), rows, True).result()


def top(c: Collection, v: np.ndarray, k: int = 5, flt: dict | None = None) -> list[tuple]:
    query = Query(c.vectors(v[None]), k, parse_filter(flt) if flt else None)
    return [(h.id, h.payload) for h in c.search(query)[0]]


@contextlib.contextmanager
def followed(
    data: Path, spec: dict, n: int, seed: int, first: range, **options: object
) -> Iterator[tuple[Service, Collection, Follower, np.ndarray]]:
    """A service with collection "c" (points `first` of n seeded rows) and a follower of it."""
    service = open_service(data, **options)
    writer, _ = service.create("c", CollectionSpec.model_validate(spec))
    x = unit_rows(n, DIM, seed=seed)
    upsert(writer, x, first)
    follower = Follower(data / "collections" / "c")
    try:
        yield service, writer, follower, x
    finally:
        follower.close()
        service.close_all()


def test_follower_replays_upserts_replacements_and_deletes(tmp_path: Path) -> None:
    with followed(tmp_path, FLAT, 400, 1, range(0, 200)) as (_, writer, follower, x):
        scratch = follower.collection.st.index_folder.root
        assert scratch != writer.st.index_folder.root  # its own files: appends stay there
        assert len(list(scratch.glob("gen-*"))) == 1  # the checkpoint moved in, not copied twice
        upsert(writer, x, range(200, 300))  # new points
        upsert(writer, x[::-1].copy(), range(0, 10), tag="moved")  # id i now holds x[399 - i]
        writer.delete([str(i) for i in range(50, 60)], None, True).result()
        with follower.reading() as copy:
            for v in (x[250], x[399], x[55], x[5]):
                assert top(copy, v) == top(writer, v)
            assert top(copy, x[399], k=1)[0] == (0, {"i": 0, "tag": "moved"})
            assert all(i not in range(50, 60) for i, _ in top(copy, x[55], k=20))
            assert copy.count(None) == writer.count(None) == 290
            flt = {"must": [{"key": "tag", "match": {"value": "moved"}}]}
            assert sorted(i for i, _ in top(copy, x[0], k=50, flt=flt)) == list(range(10))
            assert copy.st.live.seq == writer.st.live.seq


def test_reads_stay_pinned_to_the_state_caught_up_to(tmp_path: Path) -> None:
    with followed(tmp_path, FLAT, 100, 2, range(0, 50)) as (_, writer, follower, x):
        with follower.reading() as copy:
            # a replacement committed while the search runs: its rows are not read half-way
            upsert(writer, x, range(0, 50), version="new")
            hits = copy.search(Query(copy.vectors(x[3:4]), 3))[0]
            assert hits[0].id == 3 and hits[0].payload == {"i": 3}  # the old row, not a gap
        with follower.reading() as copy:
            assert top(copy, x[3], k=1)[0] == (3, {"i": 3, "version": "new"})


def test_a_training_swap_or_a_truncated_log_reloads_the_checkpoint(tmp_path: Path) -> None:
    spec = {"dim": DIM, "encoder": FAST_PQ | {"m": 4}, "index": {"kind": "flat"}}
    spec["train_size"] = 10**6
    opened = followed(tmp_path, spec, 1000, 3, range(0, 300), checkpoint_every_points=100)
    with opened as (_, writer, follower, x):
        assert not follower.collection.st.live.trained
        writer.train().result()
        assert writer.st.live.trained  # swapped in, and checkpointed before train() resolves
        with follower.reading() as copy:
            assert copy.st.live.trained  # the trained index, from the checkpoint after the swap
            assert copy.st.live.engine.kind == writer.st.live.engine.kind
            assert top(copy, x[10], k=3) == top(writer, x[10], k=3)
        trained = follower.collection
        for start in range(300, 600, 100):  # a checkpoint per batch, each truncating the log
            upsert(writer, x, range(start, start + 100))
        ckpt = writer.st.checkpoint
        assert ckpt is not None and ckpt.seq > trained.st.live.seq  # the log lost its position
        with follower.reading() as copy:
            assert copy is not trained  # reopened: the ops after its position were gone
            assert copy.count(None) == 600
            assert top(copy, x[555], k=3) == top(writer, x[555], k=3)


def test_a_new_incarnation_is_opened_again(tmp_path: Path) -> None:
    with followed(tmp_path, FLAT, 20, 4, range(0, 10)) as (service, _, follower, x):
        service.delete("c")
        writer, _ = service.create("c", CollectionSpec.model_validate(FLAT))
        upsert(writer, x, range(10, 12))
        with follower.reading() as copy:
            assert copy.count(None) == 2
            assert {i for i, _ in top(copy, x[0], k=10)} == {10, 11}


FOLLOW_AND_WAIT = """
import sys, time
from pathlib import Path
from server.service.follower import Follower
follower = Follower(Path(sys.argv[1]))
print(follower.collection.st.index_folder.root.parent, flush=True)
time.sleep(120)
"""


def scratch_of(follower: Follower) -> Path:
    return follower.collection.st.index_folder.root.parent


def test_the_scratch_copy_of_a_killed_follower_is_removed_by_the_next(tmp_path: Path) -> None:
    with followed(tmp_path, FLAT, 20, 5, range(0, 10)) as (_, _, follower, _):
        folder = tmp_path / "collections" / "c"
        other = subprocess.Popen(
            [sys.executable, "-c", FOLLOW_AND_WAIT, str(folder)], stdout=subprocess.PIPE, text=True
        )
        assert other.stdout is not None
        left = Path(other.stdout.readline().strip())
        assert (left / "index").is_dir() and str(other.pid) in left.name
        other.send_signal(signal.SIGKILL)
        other.wait()
        assert left.is_dir()  # killed: it could not remove its own
        again = Follower(folder)
        mine = scratch_of(again)
        assert not left.exists() and mine.is_dir() and scratch_of(follower).is_dir()
        again.close()
        assert not mine.exists()
