"""OpenAPI extras: request bodies parsed by hand are documented by their pydantic models,
whose schemas are added to components here."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

DESCRIPTION = """pith: vector search over durable, compressed collections.

Errors always have the shape `{"error": {"code": "...", "message": "..."}}`.
Authentication (when keys are configured): `Authorization: Bearer <key>` or `api-key: <key>`.
Scores: ip/cosine report the inner product (larger is better); l2 reports the Euclidean
distance (smaller is better); multi-vector collections report the Chamfer (MaxSim) sum.
"""


def json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` declaring a JSON request body of `model`."""
    ref = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": ref}}}}


def binary_body(media_type: str, description: str) -> dict[str, Any]:
    """`openapi_extra` declaring a raw binary request body."""
    schema = {"type": "string", "format": "binary"}
    content = {media_type: {"schema": schema}}
    return {"requestBody": {"required": True, "description": description, "content": content}}


def install_openapi(app: FastAPI, models: list[type[BaseModel]]) -> None:
    """Generate the schema once, with the hand-parsed bodies' models among the components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=DESCRIPTION, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in models:
            doc = model.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, sub in doc.pop("$defs", {}).items():
                components.setdefault(name, sub)
            components[model.__name__] = doc
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
