"""Fixtures of the client tests: one live `python -m server serve` on a free port (shared by
the session) and embedded clients on fresh data folders."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:  # a fresh checkout without `pip install -e clients/python`
    sys.path.insert(0, str(CLIENT_SRC))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """A pith server subprocess on 127.0.0.1 and a free port."""

    def __init__(self, data: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "server", "serve", "--data", str(data)]
        cmd += ["--port", str(self.port)]
        env = {**os.environ, "PITH_CPU_THREADS": "2", "PITH_LOG_LEVEL": "warning"}
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(CLIENT_SRC)])
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = 120.0) -> None:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            assert self.proc.poll() is None, "server exited"
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("server not ready")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live") / "data")
    yield server
    server.stop()
