"""uvicorn's httptools protocol, sending each response's head and body in one write.

uvicorn writes the status line and headers when the app sends `http.response.start`, and the
body in a second write: two send() calls, two TCP segments and two wake-ups of the client per
small JSON answer. Here the head waits for the first body write (or the end of the response,
for HEAD) and goes out with it. A `100 Continue` (written before the response starts) is not
held."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle


class HeadWithBody:
    """The transport of one request/response cycle, holding the head for the body."""

    def __init__(self, transport: asyncio.Transport, cycle: RequestResponseCycle) -> None:
        self._transport = transport
        self._cycle = cycle
        self._head: bytes | None = None
        self._head_seen = False

    def write(self, data: bytes) -> None:
        if not self._cycle.response_started:
            self._transport.write(data)  # 100 Continue
        elif not self._head_seen:
            self._head_seen = True
            self._head = data
        elif self._head is not None:
            self._transport.write(self._head + data)
            self._head = None
        else:
            self._transport.write(data)

    def flush(self) -> None:
        if self._head is not None:
            self._transport.write(self._head)
            self._head = None

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingProtocol(HttpToolsProtocol):
    """For `uvicorn.run(..., http=CoalescingProtocol)`."""

    def on_headers_complete(self) -> None:
        before = self.cycle
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle is before:  # an upgrade request: no new cycle
            return
        transport = HeadWithBody(cycle.transport, cycle)
        cycle.transport = transport  # type: ignore[assignment]
        cycle.on_response = _flushing(transport, cycle.on_response)


def _flushing(transport: HeadWithBody, on_response: Callable[[], None]) -> Callable[[], None]:
    def done() -> None:
        transport.flush()  # a HEAD answer has no body write to carry its head
        on_response()

    return done
