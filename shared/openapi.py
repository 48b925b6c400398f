"""Amending a FastAPI app's OpenAPI document where its routes cannot say everything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI

Amendment = Callable[[dict[str, Any]], None]


def amend_openapi(app: FastAPI, amend: Amendment) -> None:
    """Apply ``amend`` to the document once FastAPI built it; amendments run in the
    order they were made, and the result is kept as FastAPI keeps its own."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = build()
        amend(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
