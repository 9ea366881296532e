"""Errors of cluster mode (each owns its HTTP status and code, like core.errors)."""

from __future__ import annotations

from core.errors import PithError


class NotSupported(PithError):
    """An operation single-node pith has and cluster mode does not (snapshots)."""

    status = 501
    code = "not_supported"
