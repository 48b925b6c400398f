"""One error shape for every answer of every service: ``Problem``.

FastAPI and Starlette answer validation errors, unknown routes and wrong methods in
shapes of their own, and an unexpected exception as plain text; the handlers here
answer them as ``Problem`` too, and the OpenAPI document says so. A database that
does not answer is a 503 naming only the kind of failure: a driver's message can
quote the values of a statement, so it goes to the log, never into an answer.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, TypedDict

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException

from shared.openapi import amend_openapi

log = logging.getLogger(__name__)

RETRY_AFTER_DATABASE_S = "5"
# Connection exception, no such database, bad credentials, too many connections,
# shutting down or starting up: the database, not the statement.
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "3D", "28", "53", "57P")
PROBLEM_REF = "#/components/schemas/Problem"
# Statuses whose answers are a Problem on every operation; others are per route.
DEFAULT_DESCRIPTION = "Any other error (unknown route, wrong method, ...), as a Problem"


class Problem(BaseModel):
    """The body of every error answer."""

    error: str
    message: str
    details: list[dict[str, object]] | None = None


class FieldProblem(TypedDict):
    """What is wrong with one parameter or body field, as ``invalid_request`` says it."""

    loc: list[str]
    message: str
    type: str


def problem_response(
    status_code: int,
    error: str,
    message: str,
    details: Sequence[Mapping[str, object]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(error=error, message=message, details=details)
    return JSONResponse(body.model_dump(exclude_none=True), status_code, headers=headers)


def invalid_request(details: Sequence[Mapping[str, object]]) -> JSONResponse:
    """422: what is wrong with each named parameter or body field."""
    fields = ", ".join(_where(detail["loc"]) for detail in details[:5])
    message = f"invalid request: {fields}" if fields else "invalid request"
    return problem_response(422, "invalid_request", message, details)


def validation_details(exc: RequestValidationError) -> list[FieldProblem]:
    """Where and what, without echoing the input (it may be large, or a secret)."""
    return [
        {
            "loc": [str(part) for part in error["loc"]],
            "message": error["msg"],
            "type": error["type"],
        }
        for error in exc.errors()
    ]


def describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, first line only and bounded: what a log line, a dead letter or
    an outage reminder says of an exception."""
    text = str(exc).strip().splitlines()
    first = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return first[:limit]


def is_database_unavailable(exc: BaseException) -> bool:
    """The database cannot be used now (as opposed to refusing one statement): not
    answering, refusing the connection, or missing (asyncpg's connect errors come as
    plain DBAPIError, told apart by their SQLSTATE class)."""
    if isinstance(exc, OperationalError | InterfaceError | PoolTimeout):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated or isinstance(exc.orig, OSError):
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None) or ""
    return sqlstate.startswith(UNAVAILABLE_SQLSTATE_CLASSES)


_last_logged: dict[str, str] = {}


def database_reason(exc: BaseException, where: str) -> str:
    """A reason anyone may read, e.g. ``unreachable (OperationalError)``.

    The driver's message goes to the log only, once per change for ``where`` (a
    readiness probe asks every few seconds while the database is away); ``where`` is
    one of a few fixed labels, never anything a client sent.
    """
    detail = describe(exc)
    if _last_logged.get(where) != detail:
        _last_logged[where] = detail
        log.warning("%s: database unreachable: %s", where, detail)
    return f"unreachable ({type(exc).__name__})"


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation_failed)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(OperationalError, _database_error)
    app.add_exception_handler(InterfaceError, _database_error)
    app.add_exception_handler(PoolTimeout, _database_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
    amend_openapi(app, _document_problems)


async def _validation_failed(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return invalid_request(validation_details(exc))


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    phrase = _phrase(exc.status_code)
    error = re.sub(r"\W+", "_", phrase.lower())
    if exc.status_code == 404:
        error, message = "not_found", f"no route {request.url.path}"
    elif exc.status_code == 405:
        error, message = "method_not_allowed", f"{request.method} is not allowed here"
    else:
        message = str(exc.detail) if exc.detail else phrase
    headers = dict(exc.headers) if exc.headers else None
    return problem_response(exc.status_code, error, message, headers=headers)


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    if not is_database_unavailable(exc):
        return await _unexpected(request, exc)
    reason = database_reason(exc, "API request")
    return problem_response(
        503,
        "database_unavailable",
        f"database {reason}; nothing was changed, retry later",
        headers={"Retry-After": RETRY_AFTER_DATABASE_S},
    )


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # The query string is left out: it is the client's, and may hold anything.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal_error", "an unexpected error, logged on the server")


def _phrase(status_code: int) -> str:
    try:
        return HTTPStatus(status_code).phrase
    except ValueError:
        return "Error"


def _where(loc: object) -> str:
    parts = loc if isinstance(loc, list) else []
    return ".".join(parts) or "?"


def _document_problems(schema: dict[str, Any]) -> None:
    """Every error answer in the OpenAPI document is a Problem: FastAPI's own 422
    shape is replaced, and ``default`` covers the statuses a route does not list."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = Problem.model_json_schema()
    problem = {"application/json": {"schema": {"$ref": PROBLEM_REF}}}
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:  # FastAPI's own shape, or a route's description
                described = responses["422"].get("description", "Validation Error")
                description = "Invalid request" if described == "Validation Error" else described
                responses["422"] = {"description": description, "content": problem}
            responses["default"] = {"description": DEFAULT_DESCRIPTION, "content": problem}
    for unused in ("HTTPValidationError", "ValidationError"):
        components.pop(unused, None)


def times_out_of_range(location: str, **times: datetime | None) -> list[FieldProblem]:
    """What ``invalid_request`` says of times that have no UTC form (past year 9999 or
    before year 1 once their offset is applied), which a database cannot store."""
    problems: list[FieldProblem] = []
    for name, value in times.items():
        try:
            if value is not None:
                value.astimezone(UTC)
        except OverflowError:
            message = "out of range: must be between years 1 and 9999 in UTC"
            problems.append({"loc": [location, name], "message": message, "type": "datetime_range"})
    return problems
