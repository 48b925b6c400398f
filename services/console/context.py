"""What the console's routes read besides the request: kept on ``app.state.console`` by
``create_app`` and given to each route by the ``Context`` dependency; and who is signed
in, given by the ``Person`` dependency (``SIGNED_IN`` on every page's router)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Annotated, TypeVar

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from services.console.client import AlertsApi, IngestApi, NotAllowed, ScoringApi, SignedOut
from services.console.oidc import Provider
from services.console.session import COOKIE, Session, Sessions
from services.console.settings import ConsoleSettings
from services.scoring.schemas import ScorecardRead
from shared.http import app_state
from shared.recent import Recent

T = TypeVar("T")


@dataclass(frozen=True)
class ConsoleContext:
    settings: ConsoleSettings
    sessions: Sessions
    scoring: ScoringApi
    alerts: AlertsApi
    templates: Jinja2Templates
    provider: Provider | None = None  # sign-in through an OpenID Connect provider
    ingest: IngestApi | None = None  # VITALS_CONSOLE_INGEST_URL, when set
    # Scorecards change only when scoring restarts: one read a minute, not one a page
    # (read after the account, so the person's key has been checked first).
    scorecards: Recent[list[ScorecardRead]] = field(default_factory=lambda: Recent(60))

    def render(
        self, request: Request, name: str, status: int = 200, **context: object
    ) -> HTMLResponse:
        """The template ``name``, with who is signed in (if anyone) for its header."""
        session = getattr(request.state, "session", None)
        return self.templates.TemplateResponse(
            request, name, {"session": session, **context}, status_code=status
        )

    async def acting(self, person: Session, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call``, unless the person may not act; a refusal for want of scope in words."""
        if not person.may_act:
            group = self.settings.console_oidc_act_group
            needs = f"membership of the {group} group" if group else "an API key with act"
            raise NotAllowed(f"you cannot {what}: that needs {needs}")
        try:
            return await call()
        except NotAllowed:
            raise NotAllowed(f"your key cannot {what}: that needs the act scope") from None


Context = Annotated[ConsoleContext, app_state("console")]


def context_of(request: Request) -> ConsoleContext:
    """The context, for what no dependency reaches: middleware and exception handlers."""
    console: ConsoleContext = request.app.state.console
    return console


async def signed_in(request: Request, console: Context) -> Session:
    """Who is signed in, from the session cookie; ``SignedOut`` when nobody is (the
    sign-in page then says why). Kept on ``request.state`` for the page's header."""
    session = console.sessions.open(request.cookies.get(COOKIE))
    if session is None:
        if COOKIE in request.cookies:
            raise SignedOut("the session has ended", "session_ended")
        raise SignedOut("not signed in", "sign_in_first")
    if not session.key:  # signed in through the provider: the console's own key
        key = console.settings.console_api_key
        if key is None:
            raise SignedOut("the console has no key of its own now", "session_ended")
        session = replace(session, key=key.get_secret_value())
    request.state.session = session
    return session


Person = Annotated[Session, Depends(signed_in)]
SIGNED_IN = [Depends(signed_in)]
"""The dependencies of every page's router: none answers anyone not signed in."""
