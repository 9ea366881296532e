"""Fixtures of the reliability tests: one warm fork server per session (servers in ~0.1 s),
and the server tests' helpers on the import path."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from crash_helpers import ForkServer
from server_helpers import app_clients


@pytest.fixture(scope="session")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """app_client(**settings) -> a started, ready in-process client on tmp_path/data."""
    with app_clients(tmp_path / "data", checkpoint_idle_s=3600.0) as make:
        yield make
