"""External point ids: unsigned 64-bit integers or UUIDs, kept as canonical text keys.

The store maps each key to an internal int64 id that only ever increases (an upsert of an
existing key gets a new internal id), so the index sees ids in increasing order.
"""

from __future__ import annotations

import uuid

from core.errors import InvalidInput

U64_MAX = 2**64 - 1
PointId = int | str


def id_key(value: object) -> str:
    """The canonical key of an id given as a JSON value: '42' or a lowercase UUID."""
    if isinstance(value, bool):
        raise InvalidInput("point id: expected an unsigned integer or a UUID string, got a bool")
    if isinstance(value, int):
        if not 0 <= value <= U64_MAX:
            raise InvalidInput(f"point id {value}: outside [0, 2**64 - 1]")
        return str(value)
    if isinstance(value, str):
        return _uuid_key(value)
    raise InvalidInput(f"point id: expected an unsigned integer or a UUID string, got {value!r}")


def path_id_key(text: str) -> str:
    """The key of an id written in a URL path: decimal digits or a UUID."""
    if text.isdigit() and text.isascii():
        return id_key(int(text))
    return _uuid_key(text)


def _uuid_key(text: str) -> str:
    try:
        return str(uuid.UUID(text))
    except ValueError as exc:
        raise InvalidInput(f"point id {text[:64]!r}: not a UUID") from exc


def id_value(key: str) -> PointId:
    """The JSON value of a key: an int for integer ids, the UUID string otherwise."""
    return key if "-" in key else int(key)
