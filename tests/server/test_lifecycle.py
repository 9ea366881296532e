"""Training lifecycle, checkpoints and log replay, restarts, disk-full handling."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from server_helpers import FAST_PQ, points_body, unit_rows

from server.service import engines, trainer
from server.service.collection import Query
from server.service.errors import Unavailable
from server.service.options import Options
from server.service.registry import Service
from server.service.spec import CollectionSpec
from server.service.store import Store

DIM = 32
PQ_SPEC = {
    "dim": DIM,
    "metric": "ip",
    "encoder": FAST_PQ,
    "index": {"kind": "flat", "rerank": {"enabled": True}},
    "train_size": 400,
}


def wait_until(fn: Callable[[], bool], timeout_s: float = 60.0) -> None:
    deadline = time.time() + timeout_s
    while not fn():
        if time.time() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.05)


def top_ids(client: TestClient, q: np.ndarray, k: int = 5, name: str = "c") -> list[int]:
    r = client.post(f"/collections/{name}/search", json={"vector": q.tolist(), "k": k})
    return [h["id"] for h in r.json()["hits"]]


def test_auto_training_at_train_size_and_restart_keeps_it(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    client.put("/collections/c", json=PQ_SPEC)
    x = unit_rows(600, DIM, seed=1)
    client.put("/collections/c/points", json=points_body(x[:300]))
    assert client.get("/collections/c").json()["training"]["state"] == "untrained"
    client.put("/collections/c/points", json=points_body(x[300:], ids=list(range(300, 600))))
    wait_until(lambda: client.get("/collections/c").json()["training"]["trained"])
    info = client.get("/collections/c").json()
    assert info["indexed_points"] == 600 and info["training"]["last_duration_s"] > 0
    q = x[17]
    assert top_ids(client, q)[0] == 17
    metrics = client.get("/metrics").text
    assert 'pith_training_duration_seconds_count{collection="c"} 1.0' in metrics
    before = top_ids(client, q, k=10)
    client.__exit__(None, None, None)  # graceful stop: final checkpoint
    again = make_client()
    info = again.get("/collections/c").json()
    assert info["training"]["trained"] and info["indexed_points"] == 600
    assert top_ids(again, q, k=10) == before


class GatedEngine:
    """Wraps the final engine so training waits until the test opens the gate."""

    gate = threading.Event()
    entered = threading.Event()

    def __init__(self, inner: engines.CollectionIndex) -> None:
        self.inner = inner

    def train(self, sample: object) -> None:
        GatedEngine.entered.set()
        assert GatedEngine.gate.wait(60)
        self.inner.train(sample)  # type: ignore[arg-type]

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


def test_writes_during_training_are_replayed_before_the_swap(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    GatedEngine.gate.clear()
    GatedEngine.entered.clear()
    real = trainer.final_engine
    monkeypatch.setattr(
        trainer, "final_engine", lambda spec, folder: GatedEngine(real(spec, folder))
    )
    client = make_client()
    client.put("/collections/c", json=PQ_SPEC)
    x = unit_rows(700, DIM, seed=2)
    client.put("/collections/c/points", json=points_body(x[:500]))
    assert GatedEngine.entered.wait(30)
    # meanwhile: searches answer exactly, writes keep coming (adds, replaces, deletes)
    assert top_ids(client, x[3])[0] == 3
    client.put("/collections/c/points", json=points_body(x[500:], ids=list(range(500, 700))))
    client.put("/collections/c/points", json=points_body(x[:1], ids=[10]))  # 10 now holds x[0]
    client.post("/collections/c/points/delete", json={"ids": list(range(100, 150))})
    assert client.get("/collections/c").json()["training"]["state"] == "training"
    GatedEngine.gate.set()
    wait_until(lambda: client.get("/collections/c").json()["training"]["trained"])
    info = client.get("/collections/c").json()
    assert info["points"] == 650 and info["indexed_points"] == 650
    assert top_ids(client, x[650])[0] == 650
    assert set(top_ids(client, x[0], k=2)) == {0, 10}
    assert all(i not in range(100, 150) for i in top_ids(client, x[120], k=50))


def open_service(data: Path, **options: object) -> Service:
    service = Service(data, Options(checkpoint_idle_s=3600, **options))  # type: ignore[arg-type]
    service.open_all()
    service.ready = True
    return service


def test_crash_without_checkpoint_replays_the_log(tmp_path: Path) -> None:
    first = open_service(tmp_path, checkpoint_every_points=250)
    collection, _ = first.create(
        "c", CollectionSpec.model_validate(PQ_SPEC | {"train_size": 10**6})
    )
    x = unit_rows(1000, DIM, seed=3)
    for start in range(0, 1000, 100):  # several checkpoints, then a tail only in the log
        keys = [str(i) for i in range(start, start + 100)]
        collection.upsert(
            keys,
            collection.vectors(x[start : start + 100]),
            [{"i": i} for i in range(start, start + 100)],
            True,
        ).result()
    collection.delete([str(i) for i in range(0, 1000, 7)], None, True).result()
    ckpt = collection.st.checkpoint
    assert ckpt is not None and 0 < ckpt.seq < collection.st.live.seq
    generations = list((tmp_path / "collections" / "c" / "index").glob("gen-*"))
    assert len(generations) <= 2  # the checkpoint and the live one; older ones pruned
    with collection.st.store.reader() as conn:
        logged = [r[0] for r in conn.execute("SELECT seq FROM oplog")]
    assert logged and min(logged) > ckpt.seq  # the log keeps only what the checkpoint lacks
    # no close(): the process "dies" here; a second service opens the same folder
    second = open_service(tmp_path)
    reopened = second.get("c")
    alive = [i for i in range(1000) if i % 7]
    assert reopened.count(None) == len(alive) == reopened.st.live.engine.ntotal
    hits = reopened.search(Query(reopened.vectors(x[8:9]), k=3))[0]
    assert hits[0].id == 8 and hits[0].payload == {"i": 8}
    assert all(h.id % 7 for h in reopened.search(Query(reopened.vectors(x[14:15]), k=30))[0])
    second.close_all()


def test_disk_full_is_507_and_writes_nothing(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    client.put("/collections/c", json={"dim": DIM})
    x = unit_rows(10, DIM, seed=4)
    client.put("/collections/c/points", json=points_body(x[:5]))

    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Store, "insert", staticmethod(full))
    r = client.put("/collections/c/points", json=points_body(x[5:], ids=list(range(5, 10))))
    assert r.status_code == 507 and r.json()["error"]["code"] == "disk_full"
    monkeypatch.undo()
    assert client.post("/collections/c/points/count", json={}).json()["count"] == 5
    assert client.get("/collections/c").json()["indexed_points"] == 5
    ok = client.put("/collections/c/points", json=points_body(x[5:], ids=list(range(5, 10))))
    assert ok.json()["operation_id"] == 2  # the failed write took no sequence number


def test_retrain_swaps_again(client: TestClient) -> None:
    client.put("/collections/c", json=PQ_SPEC | {"train_size": 10_000})
    x = unit_rows(500, DIM, seed=5)
    client.put("/collections/c/points", json=points_body(x))
    assert client.post("/collections/c/train", params={"wait": True}).json() == {"state": "trained"}
    first = client.get("/collections/c").json()
    assert client.post("/collections/c/train", params={"wait": True}).json() == {"state": "trained"}
    second = client.get("/collections/c").json()
    assert second["indexed_points"] == 500 and second["checkpoint_seq"] == first["checkpoint_seq"]
    assert top_ids(client, x[42])[0] == 42
    r = client.post("/collections/c/train")
    assert r.status_code == 202


def test_closing_stops_a_training_run_at_its_next_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process ending with a training thread inside FAISS or torch aborted ("terminate called
    without an active exception"): closing now asks the run to stop and waits for it."""
    GatedEngine.gate.clear()
    GatedEngine.entered.clear()
    real, allocated = trainer.final_engine, []
    monkeypatch.setattr(
        trainer,
        "final_engine",
        lambda spec, folder: allocated.append(folder) or GatedEngine(real(spec, folder)),
    )
    service = open_service(tmp_path)
    collection, _ = service.create("c", CollectionSpec.model_validate(PQ_SPEC))
    x = unit_rows(300, DIM, seed=6)
    keys = [str(i) for i in range(300)]
    collection.upsert(keys, collection.vectors(x), [None] * 300, True).result()
    run = collection.train()
    assert GatedEngine.entered.wait(30)
    threading.Timer(0.3, GatedEngine.gate.set).start()  # the step in progress ends later
    service.close_all()
    assert GatedEngine.gate.is_set()  # close waited for it
    thread = collection.st.training.thread
    assert thread is not None and not thread.is_alive()
    with pytest.raises(Unavailable, match="closed while training"):
        run.result(0)
    assert collection.st.training.state == "untrained" and collection.st.training.error is None
    assert len(allocated) == 1 and not allocated[0].exists()  # its generation released
    reopened = open_service(tmp_path).get("c")
    assert reopened.count(None) == 300 and not reopened.st.live.trained
    reopened.close()
