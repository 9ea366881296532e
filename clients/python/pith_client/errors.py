"""The errors the server sends, as classes: `{"error": {"code", "message"}}` is raised as the
class registered for `code` (the same class whatever the transport, embedded included).

>>> from pith_client.errors import error_from
>>> err = error_from("not_found", "collection 'x' not found", 404)
>>> type(err).__name__, err.status, err.code
('NotFound', 404, 'not_found')
"""

from __future__ import annotations

from typing import ClassVar


class PithError(Exception):
    """Base class of every error the SDK raises on the server's behalf."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None and status != type(self).status:
            self.status = status  # type: ignore[misc]  # an unknown code keeps its status


class InvalidInput(PithError):
    """Bad data in a request: wrong shape, dimension, NaN/inf, bad ids or filter."""

    status = 400
    code = "invalid_input"


class Unauthorized(PithError):
    status = 401
    code = "unauthorized"


class Forbidden(PithError):
    status = 403
    code = "forbidden"


class NotFound(PithError):
    status = 404
    code = "not_found"


class MethodNotAllowed(PithError):
    status = 405
    code = "method_not_allowed"


class Conflict(PithError):
    status = 409
    code = "conflict"


class NotTrained(PithError):
    status = 409
    code = "not_trained"


class PayloadTooLarge(PithError):
    status = 413
    code = "payload_too_large"


class InvalidSpec(PithError):
    status = 422
    code = "invalid_spec"


class CorruptData(PithError):
    status = 500
    code = "corrupt_data"


class Unavailable(PithError):
    """The server is starting or the collection is closing: retried automatically."""

    status = 503
    code = "not_ready"


class ReadOnlyStorage(PithError):
    """The server's data directory is read-only: nothing was written (not retried)."""

    status = 503
    code = "read_only"


class DiskFull(PithError):
    status = 507
    code = "disk_full"


class HTTPError(PithError):
    """An HTTP error the server reports without a pith code (e.g. from a proxy)."""

    code = "http_error"


class ConnectionFailed(PithError):
    """The server could not be reached (after the retries)."""

    status = 0
    code = "connection_failed"


ERRORS: dict[str, type[PithError]] = {
    cls.code: cls
    for cls in (
        PithError,
        InvalidInput,
        Unauthorized,
        Forbidden,
        NotFound,
        MethodNotAllowed,
        Conflict,
        NotTrained,
        PayloadTooLarge,
        InvalidSpec,
        CorruptData,
        Unavailable,
        ReadOnlyStorage,
        DiskFull,
        HTTPError,
        ConnectionFailed,
    )
}


def error_from(code: str, message: str, status: int) -> PithError:
    """The exception for a server error body (unknown codes: PithError with that status)."""
    cls = ERRORS.get(code)
    if cls is None:
        err = PithError(f"{code}: {message}", status)
        return err
    return cls(message, status)
