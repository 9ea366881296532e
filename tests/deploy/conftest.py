"""Fixtures of the deploy tests (the helpers are in deploy_helpers.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from deploy_helpers import Nginx, Pith, RayHead, stop_group_pith


@pytest.fixture
def started() -> Iterator[list[Pith | Nginx | RayHead]]:
    """Everything a test starts goes here; stopped in reverse order at teardown."""
    procs: list[Pith | Nginx | RayHead] = []
    yield procs
    for proc in reversed(procs):
        if isinstance(proc, Pith):
            stop_group_pith(proc)
        else:
            proc.stop()
