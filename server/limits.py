"""Request body size limit as pure ASGI middleware: a declared Content-Length over the limit
is refused before reading; a streamed body is cut off as soon as it passes the limit. Either
way the client gets the JSON 413 and the route never sees a partial body."""

from __future__ import annotations

from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.errors import FastJSON, PayloadTooLarge, error_response

UPLOAD_SUFFIX = "/snapshots/upload"


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int, max_upload_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        limit = self.max_upload_bytes if path.endswith(UPLOAD_SUFFIX) else self.max_bytes
        declared = content_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        state: dict[str, Any] = {"seen": 0, "refused": False}

        async def limited_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                state["seen"] += len(message.get("body", b""))
                if state["seen"] > limit and not state["refused"]:
                    state["refused"] = True
                    await _refuse(scope, receive, send, limit)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message: Message) -> None:
            if not state["refused"]:
                await send(message)

        await self.app(scope, limited_receive, guarded_send)


def content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def refusal(limit: int) -> FastJSON:
    """The 413 for a body over `limit` (the connection is closed: the rest goes unread)."""
    err = PayloadTooLarge(f"request body over the limit of {limit} bytes")
    return error_response(err, headers={"Connection": "close"})


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    await refusal(limit)(scope, receive, send)
