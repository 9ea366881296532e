"""Typed domain errors. Each owns its HTTP contract (status and code); the server renders
them as {"error": {"code", "message"}} and the client SDK raises the same class back."""

from __future__ import annotations


class PithError(Exception):
    """Base class of every error pith raises on purpose."""

    status = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, dict[str, str]]:
        return {"error": {"code": self.code, "message": self.message}}


class InvalidInput(PithError):
    """Bad data in a request: wrong shape, dtype, NaN/inf, empty multi-vector, bad ids."""

    status = 400
    code = "invalid_input"


class InvalidSpec(PithError):
    """An encoder, index or collection spec that cannot be built."""

    status = 422
    code = "invalid_spec"


class NotTrained(PithError):
    """An operation needs a trained encoder or index."""

    status = 409
    code = "not_trained"


class NotFound(PithError):
    """An unknown collection or point."""

    status = 404
    code = "not_found"


class Conflict(PithError):
    """A request that contradicts existing state (e.g. a collection with another spec)."""

    status = 409
    code = "conflict"


class CorruptData(PithError):
    """Files on disk that do not match their manifest or format version."""

    status = 500
    code = "corrupt_data"


ERRORS: dict[str, type[PithError]] = {
    cls.code: cls
    for cls in (PithError, InvalidInput, InvalidSpec, NotTrained, NotFound, Conflict, CorruptData)
}
