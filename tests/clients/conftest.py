"""Fixtures of the client tests: one live `python -m server serve` on a free port (shared by
the session) and embedded clients on fresh data folders."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CLIENT_SRC = ROOT / "clients" / "python"
if str(CLIENT_SRC) not in sys.path:  # a fresh checkout without `pip install -e clients/python`
    sys.path.insert(0, str(CLIENT_SRC))

from client_helpers import LiveServer  # noqa: E402  (after the path above)


@pytest.fixture(scope="session")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path_factory.mktemp("live") / "data")
    yield server
    server.stop()
