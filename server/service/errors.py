"""Service errors beyond core.errors (each owns its HTTP status and code, like those)."""

from __future__ import annotations

from core.errors import PithError


class DiskFull(PithError):
    """A write failed because the disk is full; nothing was acknowledged."""

    status = 507
    code = "disk_full"


class Unavailable(PithError):
    """The service is starting or the collection is closing: retry later."""

    status = 503
    code = "not_ready"


STARTED_READ_ONLY = "the data directory was read-only at start: restart the server once writable"


class ReadOnlyStorage(PithError):
    """A write failed because the data directory is read-only; nothing was acknowledged."""

    status = 503
    code = "read_only"
