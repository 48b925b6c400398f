"""What every service's HTTP app has: health, readiness, metrics and error shape.

Every route is a ``GatedRoute``: its gates (the API key, the admin token) are checked
before anything about its parameters or body, and no parameter or JSON body may hold
a NUL character, which PostgreSQL's text cannot store.
"""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, status
from fastapi.dependencies.models import Dependant
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.convertors import Convertor, register_url_convertor
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import QueryKeyRefusal, is_gate, redact_access_log
from shared.errors import FieldProblem, install_error_handlers, invalid_request
from shared.errors import Problem as Problem
from shared.errors import problem_response as problem_response
from shared.health import Readiness
from shared.metrics import HTTP_REQUEST_SECONDS, HTTP_REQUESTS, exposition
from shared.openapi import operation_id

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]
# A JSON escape of NUL: \u0000 preceded by an even number of backslashes.
JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


class IdConvertor(Convertor[str]):
    """``{name:id}`` in a route: an id as sent, any characters, ``/`` and line breaks
    included (Starlette's ``path`` stops at a line break, so such an id would find no
    route instead of being checked and looked up)."""

    regex = "(?s:.*)"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("id", IdConvertor())


class LivenessReport(BaseModel):
    status: str
    problems: dict[str, str] | None = None


class ReadinessReport(BaseModel):
    ready: bool
    checks: dict[str, str]


class GatedRoute(APIRoute):
    """Runs the route's gates (``shared.auth.gate``) first, then refuses NUL characters
    in parameters and JSON bodies, then lets FastAPI read and validate the request."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        dependants = list(_dependants(self.dependant))
        gates = [call for d in dependants if (call := d.call) is not None and is_gate(call)]
        query = frozenset(p.alias for d in dependants for p in d.query_params)
        reads_body = self.body_field is not None

        async def gated(request: Request) -> Response:
            for check in gates:
                await check(request)
            problems = _nul_characters(request, query)
            if reads_body:
                problems += await _nul_in_body(request)
            if problems:
                return invalid_request(problems)
            return await handler(request)

        return gated


def _dependants(dependant: Dependant) -> Iterator[Dependant]:
    yield dependant
    for sub in dependant.dependencies:
        yield from _dependants(sub)


def _nul_characters(request: Request, query: frozenset[str]) -> list[FieldProblem]:
    """NUL characters in the path parameters, and in the query parameters the route
    reads (others are ignored, like the rest of a request the route has no use for)."""
    found = [["path", name] for name, value in request.path_params.items() if "\0" in str(value)]
    found += [
        ["query", name]
        for name, value in request.query_params.multi_items()
        if name in query and "\0" in value
    ]
    return [
        {"loc": loc, "message": "must not contain NUL characters", "type": "nul"} for loc in found
    ]


async def _nul_in_body(request: Request) -> list[FieldProblem]:
    if JSON_NUL.search(await request.body()) is None:
        return []
    return [{"loc": ["body"], "message": "must not contain NUL characters", "type": "nul"}]


# Any other method a client sends is counted as "other": the label set stays bounded.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestMetrics:
    """Counts and times every HTTP request by route template, method and status code
    (``vitals_http_requests_total``, ``vitals_http_request_duration_seconds``). Plain
    ASGI: ``app.middleware("http")`` would wrap every request in a task and a stream, a
    cost on the hot path. A request no route matched is counted as route "unmatched"."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = "500"  # what the client gets when the app fails before answering

        async def send_noting_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = str(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            # The router put the matched route into this same scope; a mount (the
            # console's /static) names none, its prefix stands for it.
            route = getattr(scope.get("route"), "path", None)
            if route is None and "endpoint" in scope:
                route = scope.get("root_path")
            route = route or "unmatched"
            method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
            HTTP_REQUESTS.labels(route, method, code).inc()
            HTTP_REQUEST_SECONDS.labels(route, method, code).observe(time.perf_counter() - started)


def create_service_app(*, title: str, description: str, lifespan: Lifespan) -> FastAPI:
    app = FastAPI(
        title=title,
        description=description,
        version="0.1.0",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,
    )
    app.router.route_class = GatedRoute
    app.add_middleware(QueryKeyRefusal)
    app.add_middleware(RequestMetrics)  # the outermost: refusals are counted too
    install_error_handlers(app)
    redact_access_log()

    @app.get(
        "/healthz",
        tags=["operations"],
        summary="The process is alive: nothing in it is stuck beyond recovering by itself",
        response_model=LivenessReport,
        responses={503: {"model": LivenessReport, "description": "Restart the process"}},
    )
    async def healthz(request: Request) -> JSONResponse:
        readiness: Readiness | None = getattr(request.app.state, "readiness", None)
        problems = readiness.liveness() if readiness is not None else {}
        if problems:
            body = {"status": "failing", "problems": problems}
            return JSONResponse(body, status.HTTP_503_SERVICE_UNAVAILABLE)
        return JSONResponse({"status": "ok"})

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Broker and database reachable, consumer running",
        response_model=ReadinessReport,
        responses={503: {"model": ReadinessReport, "description": "Something is missing"}},
    )
    async def readyz(request: Request) -> JSONResponse:
        readiness: Readiness = request.app.state.readiness
        checks = await readiness.evaluate()
        ready = all(problem == "ok" for problem in checks.values())
        code = status.HTTP_200_OK if ready else status.HTTP_503_SERVICE_UNAVAILABLE
        return JSONResponse({"ready": ready, "checks": checks}, code)

    @app.get("/metrics", tags=["operations"], summary="Prometheus metrics")
    async def metrics(request: Request) -> Response:
        # Readiness as a metric too, so a rule can say which check failed and for how long.
        readiness: Readiness | None = getattr(request.app.state, "readiness", None)
        if readiness is not None:
            await readiness.evaluate()
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    return app


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_db_session)]
"""A session from ``app.state.sessions`` for one request."""


def app_state(name: str) -> object:
    """A dependency giving ``request.app.state.<name>``: what ``create_app`` kept there
    for the routes. Use as ``Annotated[Kept, app_state("kept")]``. A coroutine, so FastAPI
    calls it inline: a plain function would cost a thread-pool hop on every request."""

    async def kept(request: Request) -> object:
        return getattr(request.app.state, name)

    return Depends(kept)
