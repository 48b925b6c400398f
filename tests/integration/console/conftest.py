"""The console on a real uvicorn server, over a stand-in for the scoring and alerts
APIs that answers one key and records every request the console makes."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from services.console import security
from services.console.app import create_app
from services.console.settings import ConsoleSettings
from shared.auth import Scope, generate_key
from tests.support.servers import serve

KEY, _ = generate_key("kim", {Scope.read, Scope.act})
BROKEN = "broken"  # an account the stand-in answers with a body that is not JSON
MISSHAPEN = "misshapen"  # one it answers with JSON that is not the scoring API's model
# Loggers whose filters other tests' apps may have left in this process.
LOGGERS = security.LOGGERS


@dataclass
class Apis:
    """The stand-in: ``KEY`` reads until revoked; ``seen`` is every URL asked for."""

    seen: list[str] = field(default_factory=list)
    revoked: bool = False

    def app(self) -> FastAPI:
        app = FastAPI()
        app.middleware("http")(self._record)
        app.get("/healthz")(lambda: {"status": "ok"})
        app.get("/v1/accounts")(lambda: {"accounts": [], "next_cursor": None})
        app.get("/v1/accounts/{account_id:path}")(self._account)
        return app

    async def _record(self, request: Request, call_next: Any) -> Response:
        self.seen.append(str(request.url))
        if request.url.path != "/healthz" and (
            self.revoked or request.headers.get("authorization") != f"Bearer {KEY}"
        ):
            return JSONResponse({"message": "the API key is not valid"}, 401)
        response: Response = await call_next(request)
        return response

    async def _account(self, account_id: str) -> Response:
        if account_id == BROKEN:
            return Response("not JSON", media_type="application/json")
        if account_id == MISSHAPEN:
            return JSONResponse({"account_id": account_id, "health_score": "fine"})
        return JSONResponse({"message": f"no account {account_id!r}"}, 404)


@dataclass
class RunningConsole:
    url: str
    apis: Apis

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url)

    @contextlib.asynccontextmanager
    async def signed_in(self) -> AsyncIterator[httpx.AsyncClient]:
        """A client with a session, signed in with ``KEY``."""
        async with self.client() as client:
            signed = await client.post("/sign-in", data={"name": "Kim", "key": KEY})
            assert signed.status_code == 303 and signed.headers["location"] == "/", signed.text
            yield client


@pytest.fixture
async def console() -> AsyncIterator[RunningConsole]:
    apis = Apis()
    async with serve(apis.app()) as api_url:
        settings = ConsoleSettings(
            environment="test",
            console_scoring_url=api_url,
            console_alerts_url=api_url,
            # Never reached: a provider's answer that is an error is read before it.
            console_oidc_issuer="http://127.0.0.1:9",
            console_oidc_client_id="vitals-console",
            console_api_key=KEY,
        )
        with _bare_loggers():
            async with serve(create_app(settings)) as url:
                yield RunningConsole(url, apis)


@contextlib.contextmanager
def _bare_loggers() -> Iterator[None]:
    """``LOGGERS`` without filters while the console runs, so only its own hide keys."""
    loggers = [logging.getLogger(name) for name in LOGGERS]
    kept = [list(logger.filters) for logger in loggers]
    for logger in loggers:
        logger.filters.clear()
    try:
        yield
    finally:
        for logger, filters in zip(loggers, kept, strict=True):
            logger.filters[:] = filters
