"""One JSON error shape, {"error": {"code", "message"}}, for every failure: typed domain
errors render themselves; FastAPI's validation errors, Starlette's HTTP errors (404 unknown
route, 405) and anything unexpected are mapped onto the same shape."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import ClientDisconnect

from core.errors import InvalidInput, NotFound, PithError

log = logging.getLogger("pith.errors")


class Unauthorized(PithError):
    """Missing or wrong API key."""

    status = 401
    code = "unauthorized"


class Forbidden(PithError):
    """The key is valid but may not do this (the read-only key writing)."""

    status = 403
    code = "forbidden"


class MethodNotAllowed(PithError):
    status = 405
    code = "method_not_allowed"


class PayloadTooLarge(PithError):
    """The request body is over the configured limit."""

    status = 413
    code = "payload_too_large"


class FastJSON(JSONResponse):
    """JSON rendered by orjson (numpy arrays included)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error response: a stable machine code and a human message."""

    error: ErrorDetail


def error_doc(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


ERRORS_COMMON: dict[int | str, dict[str, Any]] = {
    400: error_doc("invalid input (shape, dimension, NaN/inf, unknown field, malformed base64)"),
    401: error_doc("missing or wrong API key"),
    404: error_doc("unknown collection or point"),
    413: error_doc("request body over the size limit"),
    503: error_doc("the server is still loading collections"),
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    403: error_doc("the read-only key cannot write"),
    507: error_doc("disk full: nothing was written"),
}


def error_response(err: PithError, headers: dict[str, str] | None = None) -> FastJSON:
    if isinstance(err, Unauthorized):
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return FastJSON(err.to_dict(), status_code=err.status, headers=headers)


def validation_message(errors: list[Any]) -> str:
    """'body.k: Input should be ...; ...' from pydantic errors, without echoing inputs."""
    parts = []
    for e in errors[:5]:
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        parts.append(f"{loc}: {e.get('msg', 'invalid')}" if loc else str(e.get("msg", "invalid")))
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


async def _pith_error(request: Request, exc: Exception) -> FastJSON:
    assert isinstance(exc, PithError)
    if exc.status == 500:
        log.error("%s %s: %s", request.method, request.url.path, exc.message)
    return error_response(exc)


async def _validation_error(request: Request, exc: Exception) -> FastJSON:
    assert isinstance(exc, RequestValidationError | ValidationError)
    return error_response(InvalidInput(validation_message(list(exc.errors()))))


async def _http_error(request: Request, exc: Exception) -> FastJSON:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        err: PithError = NotFound(f"no route {request.method} {request.url.path}")
    elif exc.status_code == 405:
        err = MethodNotAllowed(f"method {request.method} not allowed on {request.url.path}")
    elif exc.status_code == 400:  # FastAPI could not decode the body (e.g. invalid UTF-8)
        err = InvalidInput(str(exc.detail))
    else:
        err = PithError(str(exc.detail))
        err.status, err.code = exc.status_code, "http_error"
    return error_response(err, headers=dict(exc.headers or {}))


async def _disconnected(request: Request, exc: Exception) -> FastJSON:
    """The client went away (or the body limit cut it off): nobody reads this response."""
    return error_response(InvalidInput("client disconnected"))


async def _unexpected(request: Request, exc: Exception) -> FastJSON:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(PithError("internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PithError, _pith_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(ClientDisconnect, _disconnected)
    app.add_exception_handler(Exception, _unexpected)
