"""Fixtures of the reliability tests: one warm fork server per session (servers in ~0.1 s),
and the server tests' helpers on the import path."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))

from crash_helpers import ForkServer


@pytest.fixture(scope="session")
def forks() -> Iterator[ForkServer]:
    server = ForkServer()
    yield server
    server.close()
