"""HTTP transports (sync and async over httpx) with one retry policy: connection errors,
timeouts and 503/502/504 are retried with exponential backoff; other errors are raised as
the class of their code (pith_client.errors)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import httpx

from pith_client.calls import Call, dumps, loads
from pith_client.errors import ConnectionFailed, HTTPError, PithError, Unavailable, error_from

T = TypeVar("T")
TRANSIENT_STATUS = {502, 503, 504}
BODY_METHODS = {"PUT", "POST"}


@dataclass(frozen=True)
class RetryPolicy:
    """`retries` extra attempts after the first; the n-th waits backoff_s * 2**n (capped)."""

    retries: int = 3
    backoff_s: float = 0.25
    max_backoff_s: float = 8.0

    def delay_s(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2**attempt))


def headers(api_key: str | None) -> dict[str, str]:
    out = {"content-type": "application/json", "user-agent": "pith-client/0.1"}
    if api_key:
        out["authorization"] = f"Bearer {api_key}"
    return out


def raise_for(response: httpx.Response) -> None:
    """The server's error body as its exception class."""
    try:
        error = loads(response.content)["error"]
        code, message = str(error["code"]), str(error["message"])
    except Exception:
        raise HTTPError(
            f"HTTP {response.status_code}: {response.text[:200]}", response.status_code
        ) from None
    raise error_from(code, message, response.status_code)


def transient(exc: BaseException) -> bool:
    """Worth retrying: the server was unreachable, slow, or said "try again" (503 not_ready,
    or a gateway's 502/503/504); a read-only data directory, say, is not retried."""
    if isinstance(exc, httpx.TransportError):
        return True
    return isinstance(exc, Unavailable | HTTPError) and exc.status in TRANSIENT_STATUS


def _request_args(call: Call[Any]) -> dict[str, Any]:
    args: dict[str, Any] = {"params": {k: _param(v) for k, v in call.params.items()}}
    if call.method in BODY_METHODS and call.file_in is None:
        args["content"] = dumps(call.body if call.body is not None else {})
    return args


def _param(value: Any) -> Any:
    return ("true" if value else "false") if isinstance(value, bool) else value


def _may_retry(call: Call[Any], exc: BaseException) -> bool:
    # a non-idempotent call is only retried when it surely never reached the server
    return transient(exc) and (call.idempotent or isinstance(exc, httpx.ConnectError))


def _reraise(exc: BaseException) -> NoReturn:
    if isinstance(exc, httpx.TransportError):
        raise ConnectionFailed(f"{type(exc).__name__}: {exc}") from exc
    raise exc


class HttpTransport:
    """Synchronous: one pooled httpx.Client (thread-safe, so uploads can run in threads)."""

    def __init__(
        self, url: str, api_key: str | None, timeout_s: float, policy: RetryPolicy
    ) -> None:
        self.http = httpx.Client(base_url=url, headers=headers(api_key), timeout=timeout_s)
        self.policy = policy
        self.retried = 0  # retries done so far (all calls)

    def execute(self, call: Call[T], retries: int | None = None) -> Any:
        limit = self.policy.retries if retries is None else retries
        for attempt in range(limit + 1):
            try:
                return self._once(call)
            except (httpx.TransportError, PithError) as exc:
                if attempt == limit or not _may_retry(call, exc):
                    _reraise(exc)
                self.retried += 1
                time.sleep(self.policy.delay_s(attempt))
        raise AssertionError("unreachable")

    def _once(self, call: Call[T]) -> Any:
        if call.file_out is not None:
            with self.http.stream(call.method, call.path) as response:
                if response.status_code >= 400:
                    response.read()
                    raise_for(response)
                with open(call.file_out, "wb") as f:
                    for chunk in response.iter_bytes():
                        f.write(chunk)
            return None
        args = _request_args(call)
        if call.file_in is not None:
            with open(call.file_in, "rb") as f:
                response = self.http.request(call.method, call.path, content=f.read(), **args)
        else:
            response = self.http.request(call.method, call.path, **args)
        if response.status_code >= 400:
            raise_for(response)
        return loads(response.content)

    def close(self) -> None:
        self.http.close()


class AsyncHttpTransport:
    """Asynchronous twin of HttpTransport (one httpx.AsyncClient)."""

    def __init__(
        self, url: str, api_key: str | None, timeout_s: float, policy: RetryPolicy
    ) -> None:
        self.http = httpx.AsyncClient(base_url=url, headers=headers(api_key), timeout=timeout_s)
        self.policy = policy
        self.retried = 0

    async def execute(self, call: Call[T], retries: int | None = None) -> Any:
        limit = self.policy.retries if retries is None else retries
        for attempt in range(limit + 1):
            try:
                return await self._once(call)
            except (httpx.TransportError, PithError) as exc:
                if attempt == limit or not _may_retry(call, exc):
                    _reraise(exc)
                self.retried += 1
                await asyncio.sleep(self.policy.delay_s(attempt))
        raise AssertionError("unreachable")

    async def _once(self, call: Call[T]) -> Any:
        if call.file_out is not None:
            async with self.http.stream(call.method, call.path) as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise_for(response)
                with open(call.file_out, "wb") as f:
                    async for chunk in response.aiter_bytes():
                        f.write(chunk)
            return None
        args = _request_args(call)
        if call.file_in is not None:
            args["content"] = call.file_in.read_bytes()
        response = await self.http.request(call.method, call.path, **args)
        if response.status_code >= 400:
            raise_for(response)
        return loads(response.content)

    async def close(self) -> None:
        await self.http.aclose()
