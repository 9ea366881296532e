"""The `pith` client subcommands: import (.npy, .jsonl, .parquet), search, collections,
snapshot, bench — against the live server and embedded; one run as a fresh subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from client_helpers import CLIENT_SRC, ROOT, LiveServer, rows
from pith_client import Client

from server.cli import main


def pith(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_import_npy_then_search_snapshot_bench(
    live_server: LiveServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    x = rows(300, 12, seed=31)
    np.save(tmp_path / "x.npy", x)
    url = ("--url", live_server.url)
    out = pith(capsys, "import", "cli_npy", str(tmp_path / "x.npy"), *url, "--batch-size", "64")
    assert "imported 300 points into cli_npy" in out and "vectors/s" in out
    hits = pith(capsys, "search", "cli_npy", "--npy", str(tmp_path / "x.npy"), "--row", "17", *url)
    first = json.loads(hits.splitlines()[0])
    assert first["id"] == 17 and first["score"] == pytest.approx(1.0, abs=1e-3)
    assert len(hits.splitlines()) == 10
    listing = pith(capsys, "collections", *url)
    assert any(
        line.startswith("cli_npy\t300 points\tdim 12\tcosine") for line in listing.split("\n")
    )
    made = pith(capsys, "snapshot", "create", "cli_npy", *url).split()[0]
    assert made in pith(capsys, "snapshot", "list", "cli_npy", *url)
    with Client(live_server.url) as client:
        client.delete("cli_npy", list(range(100)))
        assert client.count("cli_npy") == 200
        assert "300 points" in pith(capsys, "snapshot", "restore", "cli_npy", made, *url)
        assert client.count("cli_npy") == 300
    bench = pith(capsys, "bench", "cli_npy", "--queries", "40", "--concurrency", "2", *url)
    assert "qps" in bench and float(bench.split("qps")[1].split()[0].replace(",", "")) > 0


def test_import_jsonl_and_parquet_embedded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    x = rows(50, 4, seed=32)
    with open(tmp_path / "p.jsonl", "w") as f:
        for i, v in enumerate(x):
            f.write(json.dumps({"id": 500 + i, "vector": v.tolist(), "colour": ["a", "b"][i % 2]}))
            f.write("\n")
    table = pa.table({"id": list(range(50)), "vector": x.tolist(), "n": list(range(50))})
    pq.write_table(table, tmp_path / "p.parquet")
    data = ("--path", str(tmp_path / "data"))
    assert "imported 50" in pith(capsys, "import", "js", str(tmp_path / "p.jsonl"), *data)
    assert "imported 50" in pith(capsys, "import", "pq", str(tmp_path / "p.parquet"), *data)
    with Client(path=tmp_path / "data") as client:
        assert client.get("js", 503).payload == {"colour": "b"}
        assert client.get("pq", 7).payload == {"n": 7}
        assert client.search("pq", x[9], k=1)[0].id == 9
        assert client.count("js", {"must": [{"key": "colour", "match": {"value": "a"}}]}) == 25
    assert main(["import", "pq", str(tmp_path / "nope.csv"), *data]) == 1
    assert "unknown file type" in capsys.readouterr().err


def test_fresh_process_import(live_server: LiveServer, tmp_path: Path) -> None:
    """`python -m server import` in a new process that finds the SDK from the checkout."""
    np.save(tmp_path / "v.npy", rows(2000, 16, seed=33))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(CLIENT_SRC)])}
    cmd = [sys.executable, "-m", "server", "import", "cli_fresh", str(tmp_path / "v.npy")]
    done = subprocess.run(
        [*cmd, "--url", live_server.url, "--progress"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "imported 2000 points" in done.stdout
    assert "2.00k/2.00k" in done.stderr  # the progress bar (tqdm, vectors)
    with Client(live_server.url) as client:
        assert client.count("cli_fresh") == 2000
