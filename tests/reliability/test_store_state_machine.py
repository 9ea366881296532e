"""A Hypothesis state machine over one collection (the service, no HTTP): upserts, deletes
by id and by filter, searches and restarts (a graceful close, or a crash-like close that
skips the final checkpoint so start-up replays the log) are checked against an in-memory
model after every step: same points, payloads, versions monotonic, counts, exact top-k."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from server.service.collection import Collection, Query
from server.service.filters import Filter
from server.service.options import Options
from server.service.registry import Service
from server.service.spec import CollectionSpec

DIM = 6
IDS = st.lists(st.integers(0, 40), min_size=1, max_size=8)
# small integers: exact in float16, so the model's scores equal the store's
VECTOR = st.lists(st.integers(-4, 4), min_size=DIM, max_size=DIM).filter(any)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="pith-sm-"))
        self.options = Options(checkpoint_every_points=7, checkpoint_idle_s=3600.0)
        self.service = Service(self.dir, self.options)
        self.service.open_all()
        spec = CollectionSpec.model_validate({"dim": DIM, "metric": "ip"})
        self.service.create("c", spec)
        self.model: dict[int, tuple[np.ndarray, dict]] = {}
        self.round = 0

    @property
    def c(self) -> Collection:
        return self.service.get("c")

    @rule(ids=IDS, vector=VECTOR, wait=st.booleans())
    def upsert(self, ids: list[int], vector: list[int], wait: bool) -> None:
        self.round += 1
        rows = np.array([np.roll(vector, i) for i in ids], dtype=np.float32)
        payloads = [{"id": i, "round": self.round, "par": i % 2} for i in ids]
        self.c.upsert([str(i) for i in ids], self.c.vectors(rows), payloads, wait).result()
        for i, row, p in zip(ids, rows, payloads, strict=True):
            self.model[i] = (row, p)

    @rule(ids=IDS)
    def delete(self, ids: list[int]) -> None:
        result = self.c.delete([str(i) for i in ids], None, True).result()
        assert result.count == len(set(ids) & set(self.model))
        for i in ids:
            self.model.pop(i, None)

    @rule(par=st.integers(0, 1))
    def delete_by_filter(self, par: int) -> None:
        flt = Filter.model_validate({"must": [{"key": "par", "match": {"value": par}}]})
        self.c.delete(None, flt, True).result()
        self.model = {i: v for i, v in self.model.items() if v[1]["par"] != par}

    @rule(crash=st.booleans())
    def restart(self, crash: bool) -> None:
        """crash=True: stop the writer and close the store without the final checkpoint."""
        collection = self.c
        if crash:
            self.service._collections.clear()
            collection.close(save=False)
        else:
            self.service.close_all()
        self.service = Service(self.dir, self.options)
        self.service.open_all()
        assert self.service.failed == {}

    @precondition(lambda self: bool(self.model))
    @rule(query=VECTOR, k=st.integers(1, 12))
    def search(self, query: list[int], k: int) -> None:
        q = np.array([query], dtype=np.float32)
        hits = self.c.search(Query(self.c.vectors(q), k))[0]
        exact = {i: float(v[0] @ q[0]) for i, v in self.model.items()}
        best = sorted(exact.values(), reverse=True)[:k]
        assert sorted((h.score for h in hits), reverse=True) == best  # tie-aware
        for h in hits:
            assert h.score == exact[h.id] and h.payload == self.model[h.id][1]

    @invariant()
    def same_points(self) -> None:
        points, cursor = self.c.scroll(None, -1, 1000, True, True)
        assert cursor is None
        stored = {p.id: p for p in points}
        assert set(stored) == set(self.model) and self.c.count(None) == len(self.model)
        for i, p in stored.items():
            assert p.payload == self.model[i][1]
            np.testing.assert_array_equal(np.array(p.vector), self.model[i][0])
        info = self.c.info()
        assert info["points"] == info["indexed_points"] == len(self.model)

    def teardown(self) -> None:
        self.service.close_all()
        shutil.rmtree(self.dir, ignore_errors=True)


StoreMachine.TestCase.settings = settings(
    max_examples=12,
    stateful_step_count=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
TestStoreMachine = StoreMachine.TestCase
