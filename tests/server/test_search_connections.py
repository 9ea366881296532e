"""Client connections owned by search processes (server/searchconn.py, server/searchworker.py,
server/searchpool.py): on a real server with two processes and an API key, a connection that
only searches is answered by a process itself, sees every write acknowledged on another
connection, gets the server's own answers (byte for byte but the date) for errors, for a
deleted collection and for anything that is not a plain search (the connection goes back to
the server with the bytes not answered, pipelined ones included), and is counted in the
server's metrics."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from collections.abc import Iterator

import httpx
import orjson
import pytest
from server_helpers import routed, searches_counted, unit_rows, writes_visible

from loadtests.harness import ServerProcess

DIM = 16
SPEC = {"dim": DIM, "metric": "cosine", "index": {"kind": "flat"}}
KEY = "s3cret-key"
AUTH = {"api-key": KEY}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    env = {"PITH_SEARCH_PROCESSES": "2", "PITH_API_KEY": KEY}
    proc = ServerProcess(tmp_path_factory.mktemp("conns") / "data", env)
    proc.start()
    try:
        yield proc
    finally:
        proc.stop(signal.SIGKILL)


def client(server: ServerProcess) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=60, headers=AUTH)


def searches_answered(http: httpx.Client, status: int = 200) -> float:
    return searches_counted(http.get("/metrics").text, status)


def on_connections(http: httpx.Client, at_least: float) -> float:
    """Waits for the processes' metrics (sent every 0.2 s) to reach `at_least`."""
    deadline = time.time() + 10
    while (seen := routed(http).get("search_process_connection", 0)) < at_least:
        assert time.time() < deadline, f"{seen} searches counted on connections"
        time.sleep(0.05)
    return seen


def ready(server: ServerProcess, name: str, n: int = 40, seed: int = 1) -> httpx.Client:
    """Collection `name` with n points (id i, payload {"i": i}), and the processes started."""
    writer = client(server)
    assert writer.put(f"/collections/{name}", json=SPEC).status_code == 201
    x = unit_rows(n, DIM, seed=seed)
    points = [{"id": i, "vector": v.tolist(), "payload": {"i": i}} for i, v in enumerate(x)]
    if points:
        put = writer.put(f"/collections/{name}/points?wait=true", json={"points": points})
        assert put.is_success
    deadline = time.time() + 120
    while routed(writer).get("search_process", 0) < 4 or len(children(server)) < 2:
        assert time.time() < deadline, "search processes never became ready"
        writer.post(f"/collections/{name}/search", json={"vector": [1.0] * DIM})
        time.sleep(0.05)
    return writer


def children(server: ServerProcess) -> set[int]:
    return set(server.pids()[1:])


def raw_exchange(port: int, data: bytes, answers: int) -> list[tuple[bytes, bytes]]:
    """Send `data` on a new connection; read `answers` responses as (head, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        return raw_exchange_on(sock, answers)


def raw_exchange_on(sock: socket.socket, answers: int) -> list[tuple[bytes, bytes]]:
    """Read `answers` responses from `sock` as (head, body)."""
    buf, out = b"", []
    while len(out) < answers:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end]
            length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
            if len(buf) >= end + 4 + length:
                out.append((head, buf[end + 4 : end + 4 + length]))
                buf = buf[end + 4 + length :]
                continue
        chunk = sock.recv(1 << 16)
        assert chunk, "connection closed early"
        buf += chunk
    return out


def post(path: str, body: bytes, key: str | None = KEY) -> bytes:
    auth = f"api-key: {key}\r\n" if key else ""
    return (
        f"POST {path} HTTP/1.1\r\nhost: t\r\ncontent-type: application/json\r\n{auth}"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body


def without_date(head: bytes) -> list[bytes]:
    return [line for line in head.split(b"\r\n") if not line.lower().startswith(b"date:")]


def test_a_searching_connection_sees_every_acknowledged_write(server: ServerProcess) -> None:
    writer = ready(server, "w", n=0)
    searcher = client(server)  # connects now: handed to a process, and only searches
    before = routed(writer).get("search_process_connection", 0)
    x = unit_rows(200, DIM, seed=2)
    writes_visible(writer, searcher, "w", x, 80)
    assert on_connections(writer, before + 88) >= before + 88  # all answered on the connection


def test_answers_and_errors_are_the_servers_own(server: ServerProcess) -> None:
    writer = ready(server, "e")
    x = unit_rows(40, DIM, seed=1)
    good = orjson.dumps({"vector": x[3].tolist(), "k": 2})
    bad = orjson.dumps({"vector": [1.0, 2.0]})
    for body in (good, bad):
        (direct,) = raw_exchange(server.port, post("/collections/e/search", body), 1)
        served = writer.post("/collections/e/search", content=body)  # the server's own path
        assert direct[1] == served.content
        status = int(direct[0].split(b" ")[1])
        assert status == served.status_code
        names = [line.split(b":")[0].lower() for line in without_date(direct[0])[1:]]
        assert names == [k.encode() for k in served.headers if k != "date"]
    assert orjson.loads(raw_exchange(server.port, post("/collections/e/search", bad), 1)[0][1])[
        "error"
    ]["code"] == ("invalid_input")


def test_other_requests_go_back_to_the_server_in_order(server: ServerProcess) -> None:
    writer = ready(server, "p")
    x = unit_rows(40, DIM, seed=1)
    search = post("/collections/p/search", orjson.dumps({"vector": x[5].tolist(), "k": 1}))
    health = b"GET /healthz HTTP/1.1\r\nhost: t\r\n\r\n"
    count = post("/collections/p/points/count", b"{}")
    # pipelined: two searches, a GET and a count (back to the server), then a search again
    answers = raw_exchange(server.port, search + search + health + count + search, 5)
    assert [int(h.split(b" ")[1]) for h, _ in answers] == [200] * 5
    assert [orjson.loads(b)["hits"][0]["id"] for _, b in (answers[0], answers[1], answers[4])] == [
        5,
        5,
        5,
    ]
    assert orjson.loads(answers[3][1]) == {"count": 40}
    unauthorized = raw_exchange(server.port, post("/collections/p/search", b"{}", key=None), 1)
    expected = httpx.post(f"{server.url}/collections/p/search", json={})
    assert int(unauthorized[0][0].split(b" ")[1]) == expected.status_code == 401
    assert unauthorized[0][1] == expected.content
    assert writer.get("/healthz").status_code == 200


def test_a_deleted_collection_is_not_found_on_a_searching_connection(
    server: ServerProcess,
) -> None:
    writer = ready(server, "d")
    searcher = client(server)
    x = unit_rows(40, DIM, seed=1)
    assert searcher.post("/collections/d/search", json={"vector": x[1].tolist()}).is_success
    assert writer.delete("/collections/d").is_success
    missing = searcher.post("/collections/d/search", json={"vector": x[1].tolist()})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    other = {"dim": 4, "index": {"kind": "flat"}}
    assert writer.put("/collections/d", json=other).status_code == 201
    point = {"id": 99, "vector": [1.0, 0.0, 0.0, 0.0]}
    assert writer.put("/collections/d/points?wait=true", json={"points": [point]}).is_success
    again = client(server)  # a new connection, handed to a process: the new collection
    hits = again.post("/collections/d/search", json={"vector": [1.0, 0.0, 0.0, 0.0]})
    assert [h["id"] for h in hits.json()["hits"]] == [99]


def test_searches_on_connections_are_counted(server: ServerProcess) -> None:
    writer = ready(server, "m")
    searcher = client(server)
    x = unit_rows(40, DIM, seed=1)
    time.sleep(0.5)  # the counts of earlier searches arrive (every 0.2 s) before these are read
    before, seen = searches_answered(writer), routed(writer).get("search_process_connection", 0)
    for i in range(25):
        assert searcher.post("/collections/m/search", json={"vector": x[i].tolist()}).is_success
    on_connections(writer, seen + 25)
    assert searches_answered(writer) == before + 25 + 0  # the writer searched nothing meanwhile


def test_killed_processes_close_their_connections_only(server: ServerProcess) -> None:
    writer = ready(server, "k")  # its connection went back to the server (it wrote)
    x = unit_rows(40, DIM, seed=1)
    search = post("/collections/k/search", orjson.dumps({"vector": x[2].tolist(), "k": 1}))
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(search)
        assert b'"id":2' in sock.recv(1 << 16)  # answered by the process that owns it
        for pid in children(server):
            subprocess.run(["kill", "-9", str(pid)], check=True)
        assert sock.recv(1 << 16) == b""  # closed with its process
    for _ in range(3):  # the server answers meanwhile, on new connections and on its own
        fresh = client(server)
        hits = fresh.post("/collections/k/search", json={"vector": x[2].tolist(), "k": 1})
        assert hits.json()["hits"][0]["id"] == 2
        hits = writer.post("/collections/k/search", json={"vector": x[2].tolist(), "k": 1})
        assert hits.json()["hits"][0]["id"] == 2


def test_large_answers_are_written_whole_and_in_order(server: ServerProcess) -> None:
    writer = client(server)
    big = {"dim": 1024, "index": {"kind": "flat"}}
    assert writer.put("/collections/big", json=big).status_code == 201
    x = unit_rows(300, 1024, seed=5)
    points = [{"id": i, "vector": v.tolist()} for i, v in enumerate(x)]
    assert writer.put("/collections/big/points?wait=true", json={"points": points}).is_success
    ask = {"vector": x[0].tolist(), "k": 300, "with_vectors": True}
    searches = [post("/collections/big/search", orjson.dumps(ask | {"k": k})) for k in (300, 7)]
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the answers go in parts
        sock.settimeout(30)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"".join(searches))
        time.sleep(0.3)  # the process meanwhile writes what the buffers take, then waits
        answers = raw_exchange_on(sock, 2)
    first, second = (orjson.loads(body)["hits"] for _, body in answers)
    assert len(first) == 300 and len(second) == 7 and first[0]["id"] == second[0]["id"] == 0
    assert len(answers[0][1]) > 4 << 20  # more than the kernel takes at once: written in parts
    assert first[5]["vector"] == pytest.approx(x[first[5]["id"]].tolist(), abs=1e-3)
