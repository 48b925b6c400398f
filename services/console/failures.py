"""How the console answers what goes wrong: a page in its own words for each failure,
never a trace. ``install`` puts the handlers and the same-origin check on the app."""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlsplit

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import RequestResponseEndpoint

from services.console import problems, security
from services.console.client import ConsoleError, SignedOut
from services.console.context import context_of
from services.console.session import COOKIE

KEY_IN_URL = (
    "API keys never go in a URL: URLs end up in logs, proxies and browser histories. "
    "Sign in with your key on the sign-in page, and have this key replaced."
)
TITLES = {403: "Not allowed", 404: "Not found", 400: "Bad request", 503: "Unavailable"}
log = logging.getLogger(__name__)


def install(app: FastAPI) -> None:
    app.add_exception_handler(ConsoleError, on_console_error)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, on_bad_request)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, on_unexpected)
    app.middleware("http")(same_origin_writes)


async def same_origin_writes(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """A form posted from another site is refused (the cookie is SameSite=Lax too)."""
    origin = request.headers.get("origin")
    if request.method == "POST" and origin and urlsplit(origin).netloc != request.url.netloc:
        return context_of(request).render(
            request, "error.html", 403, title="Refused", message="Cross-site form refused."
        )
    return await call_next(request)


async def on_console_error(request: Request, exc: ConsoleError) -> Response:
    if isinstance(exc, SignedOut):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        query = urlencode({"next": target if request.method == "GET" else "/", "message": exc.code})
        response = RedirectResponse(f"/sign-in?{query}", status_code=303)
        response.delete_cookie(COOKIE)
        return response
    title = TITLES.get(exc.status, "Error")
    return context_of(request).render(
        request, "error.html", exc.status, title=title, message=exc.message
    )


async def on_bad_request(request: Request, exc: RequestValidationError) -> Response:
    message = problems.sentence(exc.errors()) or "the request is not valid"
    return context_of(request).render(
        request, "error.html", 400, title="Bad request", message=message
    )


async def on_http_error(request: Request, exc: StarletteHTTPException) -> Response:
    title = "Not found" if exc.status_code == 404 else "Error"
    message = "no such page" if exc.status_code == 404 else str(exc.detail)
    return context_of(request).render(
        request, "error.html", exc.status_code, title=title, message=message
    )


async def on_unexpected(request: Request, exc: Exception) -> Response:
    log.exception("console page failed: %s %s", request.method, request.url.path)
    response = context_of(request).render(
        request, "error.html", 500, title="Error", message="Something went wrong; it is logged."
    )
    response.headers.update(security.HEADERS)  # answered outside SecurityHeaders
    return response


def key_in_url(request: Request) -> Response:
    """The answer to a request with an API key in its URL (``KeyInUrlRefusal``)."""
    return context_of(request).render(
        request, "error.html", 400, title="Refused", message=KEY_IN_URL
    )
