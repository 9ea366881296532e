"""Fixtures for the server tests: an app on a temp data folder (TestClient runs its lifespan)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from server_helpers import app_clients


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """make_client(**settings) -> a started, ready TestClient on tmp_path/data."""
    with app_clients(tmp_path / "data") as make:
        yield make


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()
