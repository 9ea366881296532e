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
from server_helpers import fake_embedders, wait_ready

from server.app import create_app
from server.settings import Settings


@pytest.fixture(scope="session")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()


@pytest.fixture
def app_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """app_client(**settings) -> a started, ready in-process client on tmp_path/data."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(
            data=tmp_path / "data", cpu_threads=2, checkpoint_idle_s=3600.0, **overrides
        )  # type: ignore[arg-type]
        client = TestClient(create_app(settings, embedders=fake_embedders()))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)
