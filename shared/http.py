"""What every service's HTTP app has: health, readiness, metrics and error shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request, status
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession

from shared.health import Readiness

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


class Problem(BaseModel):
    """The body of every error answer."""

    error: str
    message: str
    details: list[dict[str, Any]] | None = None


class LivenessReport(BaseModel):
    status: str
    problems: dict[str, str] | None = None


class ReadinessReport(BaseModel):
    ready: bool
    checks: dict[str, str]


def problem_response(
    status_code: int,
    error: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = Problem(error=error, message=message, details=details)
    return JSONResponse(body.model_dump(exclude_none=True), status_code, headers=headers)


def create_service_app(*, title: str, description: str, lifespan: Lifespan) -> FastAPI:
    app = FastAPI(title=title, description=description, version="0.1.0", lifespan=lifespan)

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
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body is larger than {limit} bytes")
        self.limit = limit


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


def is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json"


async def _db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with request.app.state.sessions() as session:
        yield session


DbSession = Annotated[AsyncSession, Depends(_db_session)]
"""A session from ``app.state.sessions`` for one request."""
