"""Signing in and out: with an API key and a name, or through an OpenID Connect
provider (``provider_router``, included only when one is set up)."""

from __future__ import annotations

import logging
from typing import Annotated

import httpx
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import views
from services.console.client import NotAllowed, SignedOut
from services.console.context import ConsoleContext, Context
from services.console.oidc import Refused
from services.console.session import COOKIE, Session

router = APIRouter()
provider_router = APIRouter()
log = logging.getLogger(__name__)


@router.get("/sign-in")
async def sign_in_page(
    request: Request, console: Context, next: str = "/", message: str = ""
) -> HTMLResponse:
    """``message`` is a code of ``views.SIGN_IN_MESSAGES``, never text to show."""
    text = views.SIGN_IN_MESSAGES.get(message, "")
    return _sign_in_page(console, request, 200, views.safe_next(next), text)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    console: Context,
    key: Annotated[str, Form(max_length=500)],
    name: Annotated[str, Form(max_length=200)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    target = views.safe_next(next)
    key, name = key.strip(), name.strip()
    if not key or not name:
        return _sign_in_page(console, request, 400, target, "Give your name and your key.")
    try:
        await console.scoring.accounts(key, {"limit": "1"})
    except (SignedOut, NotAllowed) as exc:
        log.info("console sign-in refused for %r: %s", name, exc.message)
        text = (
            "That key was refused."
            if isinstance(exc, SignedOut)
            else ("That key cannot read accounts (it needs the read scope).")
        )
        return _sign_in_page(console, request, 401, target, text)
    return _signed_in_as(console, Session(key=key, name=name), target)


@router.post("/sign-out")
async def sign_out() -> Response:
    response = RedirectResponse("/sign-in?message=signed_out", status_code=303)
    response.delete_cookie(COOKIE)
    return response


@provider_router.get("/sign-in/provider")
async def provider_start(request: Request, console: Context, next: str = "/") -> Response:
    assert console.provider is not None
    request.session["next"] = views.safe_next(next)
    try:
        return await console.provider.start(request, str(request.url_for("provider_back")))
    except httpx.HTTPError as exc:
        return _provider_unreachable(console, request, "/", exc)


@provider_router.get("/sign-in/provider/back", name="provider_back")
async def provider_back(request: Request, console: Context) -> Response:
    assert console.provider is not None
    target = views.safe_next(request.session.pop("next", "/"))
    try:
        person = await console.provider.finish(request)
    except Refused as exc:
        log.info("sign-in through the identity provider refused: %s", exc)
        # Its reason in our words: the provider's description comes in the URL.
        message = views.provider_refusal(exc.error)
        return _sign_in_page(console, request, 401, target, message)
    except httpx.HTTPError as exc:
        return _provider_unreachable(console, request, target, exc)
    return _signed_in_as(console, Session("", person.name, person.may_act), target)


def _sign_in_page(
    console: ConsoleContext, request: Request, status: int, target: str, message: str
) -> HTMLResponse:
    return console.render(
        request,
        "sign_in.html",
        status,
        next=target,
        message=message,
        provider=console.provider is not None,
    )


def _signed_in_as(console: ConsoleContext, session: Session, target: str) -> Response:
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        console.sessions.seal(session),
        max_age=int(console.sessions.lifetime.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=console.settings.secure_cookies(),
    )
    return response


def _provider_unreachable(
    console: ConsoleContext, request: Request, target: str, exc: Exception
) -> Response:
    log.warning("identity provider unreachable: %s", exc)
    return _sign_in_page(console, request, 503, target, "The identity provider did not answer.")
