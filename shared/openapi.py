"""Amending a FastAPI app's OpenAPI document where its routes cannot say everything:
operation ids a person would type, and who may call each operation."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI, routing
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute

Amendment = Callable[[dict[str, Any]], None]
Requirement = list[dict[str, list[str]]]
"""An operation's ``security``: alternatives, any one of which is enough."""


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


def operation_id(route: APIRoute) -> str:
    """FastAPI's ``generate_unique_id_function``: the route's name (its function's,
    unless the route names itself) in camelCase, as a generated client's method:
    ``list_accounts`` -> ``listAccounts``."""
    first, *rest = route.name.split("_")
    return first + "".join(word[:1].upper() + word[1:] for word in rest)


@dataclass(frozen=True)
class Security:
    """How a caller proves who it is: OpenAPI security schemes by name, and the
    requirement an operation that needs them states."""

    schemes: Mapping[str, Mapping[str, Any]]
    requirement: Requirement = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.requirement:
            object.__setattr__(self, "requirement", [{name: []} for name in self.schemes])


API_KEY = Security(
    {
        "bearer": {"type": "http", "scheme": "bearer", "description": "An API key, vk_..."},
        "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        "basic": {
            "type": "http",
            "scheme": "basic",
            "description": "The API key as username, empty password (Segment's write key).",
        },
    }
)
"""A Vitals API key (shared/auth.py), in any of the headers it is read from."""

ADMIN_TOKEN = Security(
    {
        "adminToken": {
            "type": "http",
            "scheme": "bearer",
            "description": "The service's admin token (VITALS_ALERTS_ADMIN_TOKEN).",
        }
    }
)

SESSION = Security(
    {
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": "vitals_session",
            "description": "The console's session, set by POST /sign-in.",
        }
    }
)


def document_security(
    app: FastAPI,
    by_dependency: Mapping[Callable[..., Any], Security] | None = None,
    gates: Security | None = API_KEY,
) -> None:
    """State ``security`` on each operation whose route depends (at any depth) on a
    dependency of ``by_dependency``, else on a gate (``shared.auth.gate``: an API key,
    ``gates``), and list the schemes used in ``components.securitySchemes``."""
    from shared.auth import is_gate  # shared.auth's errors amend the document too

    explicit = dict(by_dependency or {})

    def needs(route: Any) -> Security | None:
        calls = list(_calls(route.dependant))
        chosen = next((explicit[c] for c in calls if c in explicit), None)
        if chosen is None and gates is not None and any(is_gate(c) for c in calls):
            chosen = gates
        return chosen

    def secure(schema: dict[str, Any]) -> None:
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        for route in _api_routes(app):
            security = needs(route) if route.include_in_schema else None
            if security is None:
                continue
            schemes.update({name: dict(scheme) for name, scheme in security.schemes.items()})
            for method in route.methods or ():
                operation = schema["paths"][route.path_format].get(method.lower())
                if operation is not None:
                    operation["security"] = security.requirement
        if not schemes:
            del schema["components"]["securitySchemes"]

    amend_openapi(app, secure)


def _api_routes(app: FastAPI) -> Iterator[Any]:
    """The app's API routes as the OpenAPI document sees them: a route of an included
    router with that router's dependencies (FastAPI 0.16x includes routers lazily)."""
    contexts = getattr(routing, "iter_route_contexts", None)
    if contexts is None:  # earlier: included routes are copied into the app's
        yield from (route for route in app.routes if isinstance(route, APIRoute))
        return
    for context in contexts(app.routes):
        if isinstance(context.original_route, APIRoute):
            yield context


def _calls(dependant: Dependant) -> Iterator[Callable[..., Any]]:
    for dependency in dependant.dependencies:
        if dependency.call is not None:
            yield dependency.call
        yield from _calls(dependency)
