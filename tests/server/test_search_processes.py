"""Search processes end to end (server/searchpool.py, server/searchworker.py): a real server
with two of them answers searches from its followers, sees every acknowledged write at once,
keeps answering (and starts a new one) when one is killed, and leaves none behind."""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from server_helpers import routed, unit_rows, writes_visible

from loadtests.harness import ServerProcess

DIM = 16
SPEC = {"dim": DIM, "metric": "cosine", "index": {"kind": "flat"}}


def children(server: ServerProcess) -> set[int]:
    """The server's search processes."""
    return set(server.pids()[1:])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", {"PITH_SEARCH_PROCESSES": "2"})
    proc.start()
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def wait_for_processes(server: ServerProcess, http: httpx.Client) -> None:
    """Searches until both processes answer (they start with the first search)."""
    x = unit_rows(1, DIM, seed=0)[0].tolist()
    deadline = time.time() + 120
    while routed(http).get("search_process", 0) < 20:
        assert time.time() < deadline, "search processes never became ready"
        assert http.post("/collections/c/search", json={"vector": x}).status_code == 200
        time.sleep(0.05)
    assert len(children(server)) == 2


def test_acknowledged_writes_are_searchable_at_once(server: ServerProcess) -> None:
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json=SPEC).status_code == 201
    wait_for_processes(server, http)
    x = unit_rows(300, DIM, seed=1)
    before = routed(http)["search_process"]
    writes_visible(http, http, "c", x, 150)
    assert routed(http)["search_process"] >= before + 165  # answered by the processes
    bad = http.post("/collections/c/search", json={"vector": [1.0, 2.0]})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_input"
    flt = {"must": [{"key": "i", "match": {"any": [3, 7]}}]}
    hits = http.post("/collections/c/search", json={"vector": x[0].tolist(), "k": 5, "filter": flt})
    assert sorted(h["id"] for h in hits.json()["hits"]) == [3, 7]


def test_multivector_searches_through_the_processes(server: ServerProcess) -> None:
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json=SPEC).status_code == 201
    wait_for_processes(server, http)
    muvera = {"kind": "muvera", "r_reps": 2, "k_sim": 2, "d_proj": 4}
    spec = {"dim": 8, "multivector": True, "encoder": muvera}
    assert http.put("/collections/mv", json=spec).status_code == 201
    rng = np.random.default_rng(3)
    points = [{"id": i, "vectors": rng.standard_normal((3, 8)).tolist()} for i in range(40)]
    assert http.put("/collections/mv/points?wait=true", json={"points": points}).is_success
    before = routed(http)["search_process"]
    for i in (7, 21):
        hits = http.post("/collections/mv/search", json={"vectors": points[i]["vectors"], "k": 2})
        assert hits.json()["hits"][0]["id"] == i
    assert routed(http)["search_process"] == before + 2


def test_a_killed_process_is_replaced_and_its_searches_answered(server: ServerProcess) -> None:
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json=SPEC).status_code == 201
    x = unit_rows(50, DIM, seed=2)
    body = {"points": [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)]}
    assert http.put("/collections/c/points?wait=true", json=body).is_success
    wait_for_processes(server, http)
    first = children(server)
    victim = min(first)
    subprocess.run(["kill", "-9", str(victim)], check=True)
    deadline = time.time() + 120
    while True:  # every search answered meanwhile, by the server or the survivor
        hits = http.post("/collections/c/search", json={"vector": x[7].tolist(), "k": 1})
        assert hits.status_code == 200 and hits.json()["hits"][0]["id"] == 7
        now = children(server)
        if len(now) == 2 and victim not in now:
            break
        assert time.time() < deadline, "no process replaced the killed one"
        time.sleep(0.05)


def test_no_process_outlives_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", {"PITH_SEARCH_PROCESSES": "2"})
    server.start()
    http = httpx.Client(base_url=server.url, timeout=60)
    assert http.put("/collections/c", json=SPEC).status_code == 201
    wait_for_processes(server, http)
    workers = children(server)
    server.stop(signal.SIGKILL)  # not even a graceful stop: the processes read the end
    deadline = time.time() + 30
    while any(Path(f"/proc/{pid}").exists() and _alive(pid) for pid in workers):
        assert time.time() < deadline, "search processes outlived their server"
        time.sleep(0.1)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_a_forwarded_error_is_rebuilt_as_its_own_class() -> None:
    from core.errors import InvalidInput, PithError
    from server.searchpool import forwarded
    from server.service.errors import Unavailable

    error = forwarded("invalid_input", "vector: expected dimension 16, got 2")
    assert type(error) is InvalidInput and error.status == 400
    assert error.message == "vector: expected dimension 16, got 2"
    assert type(forwarded("not_ready", "later")) is Unavailable
    unknown = forwarded("no_such_code", "?")
    assert type(unknown) is PithError and unknown.status == 500
