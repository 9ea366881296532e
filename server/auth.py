"""API keys: `Authorization: Bearer <key>` or `api-key: <key>`; the read-write key may do
everything, the read-only key may only read (403 on writes). Keys are compared in constant
time and never logged. With no key configured the API is open."""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from pydantic import SecretStr

from server.deps import SettingsDep, loaded_service
from server.errors import Forbidden, Unauthorized
from server.service.collection import Collection
from server.settings import Settings


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request carries, if any (header names in lower case)."""
    header = headers.get("authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return headers.get("api-key")


def _matches(presented: str, key: SecretStr | None) -> bool:
    if key is None:
        return False
    return hmac.compare_digest(presented.encode(), key.get_secret_value().encode())


def access_level(settings: Settings, presented: str | None) -> str:
    """ "write", "read", or raises Unauthorized."""
    if settings.api_key is None and settings.read_only_api_key is None:
        return "write"
    if presented is None:
        raise Unauthorized("missing API key (Authorization: Bearer <key> or api-key header)")
    if _matches(presented, settings.api_key):
        return "write"
    if _matches(presented, settings.read_only_api_key):
        return "read"
    raise Unauthorized("invalid API key")


async def require_read(request: Request, settings: SettingsDep) -> None:
    """Any valid key (or none needed)."""
    access_level(settings, presented_key(request.headers))


async def require_write(request: Request, settings: SettingsDep) -> None:
    """The read-write key (or none needed)."""
    if access_level(settings, presented_key(request.headers)) != "write":
        raise Forbidden("this API key is read-only")


def readable_collection(state: Any, headers: Mapping[str, str], name: str) -> Collection:
    """Auth (read) and collection lookup in one call, for hot routes without dependencies;
    `state` is the app's state."""
    access_level(state.settings, presented_key(headers))
    return loaded_service(state).get(name)
