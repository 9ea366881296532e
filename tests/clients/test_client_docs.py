"""The SDK's docstring examples run (doctest, embedded mode), and every error class the
server can send has its twin in pith_client.errors (same code, status and name)."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest
from pith_client import errors as client_errors

import core.errors
import server.errors
import server.service.errors

MODULES = ["pith_client.client", "pith_client.aio", "pith_client.errors"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0 and result.failed == 0


def _subclasses(cls: type) -> list[type]:
    return [cls, *(s for sub in cls.__subclasses__() for s in _subclasses(sub))]


def test_every_server_error_has_a_client_class() -> None:
    assert server.errors and server.service.errors  # imported so that their classes exist
    server_classes = [
        c
        for c in _subclasses(core.errors.PithError)
        if c.__module__.startswith(("core.", "server."))
    ]
    assert len(server_classes) >= 12
    for cls in server_classes:
        twin = client_errors.ERRORS.get(cls.code)
        assert twin is not None, f"add a twin of {cls} to clients/python/pith_client/errors.py"
        assert (twin.__name__, twin.status) == (cls.__name__, cls.status), cls
        err = client_errors.error_from(cls.code, "m", cls.status)
        assert type(err) is twin and err.message == "m"
    unknown = client_errors.error_from("teapot", "short and stout", 418)
    assert type(unknown) is client_errors.PithError and unknown.status == 418


def test_readme_quick_start() -> None:
    readme = Path(__file__).resolve().parents[2] / "clients" / "python" / "README.md"
    result = doctest.testfile(str(readme), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 15 and result.failed == 0
