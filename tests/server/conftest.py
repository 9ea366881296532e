"""Fixtures for the server tests: an app on a temp data folder (TestClient runs its lifespan)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_helpers import fake_embedders, wait_ready

from server.app import create_app
from server.settings import Settings


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a started, ready TestClient on tmp_path/data."""
    clients: list[TestClient] = []

    def make(**overrides: object) -> TestClient:
        settings = Settings(data=tmp_path / "data", cpu_threads=2, **overrides)  # type: ignore[arg-type]
        client = TestClient(create_app(settings, embedders=fake_embedders()))
        client.__enter__()
        clients.append(client)
        wait_ready(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
