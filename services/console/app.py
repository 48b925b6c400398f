"""The console's pages: sign-in, portfolio, accounts, an account's story, alerts inbox,
and the backtest's report.

Pages are rendered on the server (Jinja2) with htmx for in-page actions and uPlot for
charts, both shipped under ``static/vendor``: nothing loads from elsewhere.
"""

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode, urlsplit

import httpx
from cryptography.fernet import Fernet
from fastapi import APIRouter, Depends, FastAPI, Form, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.sessions import SessionMiddleware

from services.console import security, views
from services.console.backtest import read_report
from services.console.client import Api, BadInput, ConsoleError, NotAllowed, SignedOut
from services.console.oidc import Provider, Refused
from services.console.session import COOKIE, Session, Sessions
from services.console.settings import ConsoleSettings
from shared.metrics import exposition
from shared.recent import Recent

HERE = Path(__file__).parent
KEY_IN_URL = (
    "API keys never go in a URL: URLs end up in logs, proxies and browser histories. "
    "Sign in with your key on the sign-in page, and have this key replaced."
)
SIGN_IN_COOKIE = "vitals_sign_in"  # the provider sign-in's state, until it comes back
log = logging.getLogger(__name__)


def create_app(settings: ConsoleSettings) -> FastAPI:
    secret = settings.console_session_key
    sessions = Sessions(
        secret.get_secret_value().encode() if secret else Fernet.generate_key(),
        timedelta(hours=settings.console_session_hours),
    )
    timeout = httpx.Timeout(settings.console_api_timeout_s)
    scoring_client = httpx.AsyncClient(base_url=str(settings.console_scoring_url), timeout=timeout)
    alerts_client = httpx.AsyncClient(base_url=str(settings.console_alerts_url), timeout=timeout)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with scoring_client, alerts_client:
            yield

    app = FastAPI(title="Vitals console", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    provider = None
    if settings.console_oidc_issuer is not None:
        provider = Provider(settings)
        # Authlib keeps the sign-in's state and nonce here, for its ten minutes.
        app.add_middleware(
            SessionMiddleware,
            secret_key=sessions.secret,
            session_cookie=SIGN_IN_COOKIE,
            max_age=600,
            https_only=settings.secure_cookies(),
        )
    pages = Pages(
        settings,
        sessions,
        Api("scoring", scoring_client),
        Api("alerts", alerts_client),
        _templates(),
        provider,
    )
    pages.register(app)
    app.add_middleware(security.KeyInUrlRefusal, refusal=pages.key_in_url)
    app.add_middleware(security.SecurityHeaders)  # the outermost: on every answer
    security.redact_logs()
    return app


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=HERE / "templates")
    env = templates.env
    env.filters["money"] = views.money
    env.filters["signed_money"] = views.signed_money
    env.globals["moved"] = views.moved
    env.globals["moved_share"] = views.moved_share
    env.globals["names_of"] = views.names_of
    env.filters["path"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = _when
    env.globals["urlencode"] = urlencode
    return templates


def _person(request: Request) -> Session:
    """Who is signed in: put there by ``Pages.signed_in``, every page's dependency."""
    session: Session = request.state.session
    return session


def _when(value: str | None) -> str:
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Pages:
    settings: ConsoleSettings
    sessions: Sessions
    scoring: Api
    alerts: Api
    templates: Jinja2Templates
    provider: Provider | None = None
    # Scorecards change only when scoring restarts: one read a minute, not one a page
    # (read after the account, so the person's key has been checked first).
    scorecards: Recent[list[dict[str, Any]]] = field(default_factory=lambda: Recent(60))

    def render(
        self, request: Request, name: str, status: int = 200, **context: Any
    ) -> HTMLResponse:
        session = getattr(request.state, "session", None)
        return self.templates.TemplateResponse(
            request, name, {"session": session, **context}, status_code=status
        )

    def signed_in(self, request: Request) -> Session:
        session = self.sessions.open(request.cookies.get(COOKIE))
        if session is None:
            if COOKIE in request.cookies:
                raise SignedOut("the session has ended", "session_ended")
            raise SignedOut("not signed in", "sign_in_first")
        if not session.key:  # signed in through the provider: the console's own key
            key = self.settings.console_api_key
            if key is None:
                raise SignedOut("the console has no key of its own now", "session_ended")
            session = replace(session, key=key.get_secret_value())
        request.state.session = session
        return session

    def register(self, app: FastAPI) -> None:
        app.add_api_route("/healthz", self.healthz, methods=["GET"])
        app.add_api_route("/readyz", self.readyz, methods=["GET"])
        app.add_api_route("/metrics", self.metrics, methods=["GET"])
        app.add_api_route("/sign-in", self.sign_in_page, methods=["GET"])
        app.add_api_route("/sign-in", self.sign_in, methods=["POST"])
        app.add_api_route("/sign-out", self.sign_out, methods=["POST"])
        if self.provider is not None:
            app.add_api_route("/sign-in/provider", self.provider_start, methods=["GET"])
            back = "/sign-in/provider/back"
            app.add_api_route(back, self.provider_back, methods=["GET"], name="provider_back")
        pages = APIRouter(
            dependencies=[Depends(self.signed_in)], default_response_class=HTMLResponse
        )
        pages.add_api_route("/", self.portfolio, methods=["GET"])
        pages.add_api_route("/accounts", self.accounts, methods=["GET"])
        # The actions on an account first: its id may hold "/", so the page's route,
        # which takes the rest of the path, must come after them.
        pages.add_api_route(
            "/accounts/{account_id:path}/overrides", self.set_override, methods=["POST"]
        )
        pages.add_api_route(
            "/accounts/{account_id:path}/overrides/lift", self.lift_override, methods=["POST"]
        )
        pages.add_api_route("/accounts/{account_id:path}", self.account, methods=["GET"])
        pages.add_api_route("/alerts", self.inbox, methods=["GET"])
        pages.add_api_route("/backtest", self.backtest, methods=["GET"])
        pages.add_api_route("/backtest/chart.png", self.backtest_chart, methods=["GET"])
        pages.add_api_route("/alerts/{alert_id}/ack", self.ack, methods=["POST"])
        pages.add_api_route("/alerts/{alert_id}/snooze", self.snooze, methods=["POST"])
        app.include_router(pages)
        app.add_exception_handler(ConsoleError, self.on_console_error)  # type: ignore[arg-type]
        app.add_exception_handler(RequestValidationError, self.on_bad_request)  # type: ignore[arg-type]
        app.add_exception_handler(StarletteHTTPException, self.on_http_error)  # type: ignore[arg-type]
        app.add_exception_handler(Exception, self.on_unexpected)
        app.middleware("http")(self.same_origin_writes)

    # --- pages ------------------------------------------------------------------------

    async def healthz(self) -> dict[str, str]:
        return {"status": "ok"}

    async def readyz(self) -> JSONResponse:
        """Ready when the scoring and alerts APIs answer: every page needs them."""
        checks = {api.name: await api.alive() for api in (self.scoring, self.alerts)}
        ready = all(problem == "ok" for problem in checks.values())
        return JSONResponse({"ready": ready, "checks": checks}, 200 if ready else 503)

    async def metrics(self) -> Response:
        return Response(exposition(), media_type=CONTENT_TYPE_LATEST)

    async def sign_in_page(
        self, request: Request, next: str = "/", message: str = ""
    ) -> HTMLResponse:
        """``message`` is a code of ``views.SIGN_IN_MESSAGES``, never text to show."""
        text = views.SIGN_IN_MESSAGES.get(message, "")
        return self._sign_in_page(request, 200, views.safe_next(next), text)

    def _sign_in_page(
        self, request: Request, status: int, target: str, message: str
    ) -> HTMLResponse:
        return self.render(
            request,
            "sign_in.html",
            status,
            next=target,
            message=message,
            provider=self.provider is not None,
        )

    async def sign_in(
        self,
        request: Request,
        key: Annotated[str, Form(max_length=500)],
        name: Annotated[str, Form(max_length=200)],
        next: Annotated[str, Form(max_length=2000)] = "/",
    ) -> Response:
        target = views.safe_next(next)
        key, name = key.strip(), name.strip()
        if not key or not name:
            return self._sign_in_page(request, 400, target, "Give your name and your key.")
        try:
            await self.scoring.get(key, "/v1/accounts", {"limit": "1"})
        except (SignedOut, NotAllowed) as exc:
            log.info("console sign-in refused for %r: %s", name, exc.message)
            text = (
                "That key was refused."
                if isinstance(exc, SignedOut)
                else ("That key cannot read accounts (it needs the read scope).")
            )
            return self._sign_in_page(request, 401, target, text)
        return self._signed_in_as(Session(key=key, name=name), target)

    def _signed_in_as(self, session: Session, target: str) -> Response:
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            self.sessions.seal(session),
            max_age=int(self.sessions.lifetime.total_seconds()),
            httponly=True,
            samesite="lax",
            secure=self.settings.secure_cookies(),
        )
        return response

    async def provider_start(self, request: Request, next: str = "/") -> Response:
        """Registered only with a provider, as is ``provider_back``."""
        assert self.provider is not None
        request.session["next"] = views.safe_next(next)
        try:
            return await self.provider.start(request, str(request.url_for("provider_back")))
        except httpx.HTTPError as exc:
            return self._provider_unreachable(request, "/", exc)

    async def provider_back(self, request: Request) -> Response:
        assert self.provider is not None
        target = views.safe_next(request.session.pop("next", "/"))
        try:
            person = await self.provider.finish(request)
        except Refused as exc:
            log.info("sign-in through the identity provider refused: %s", exc)
            # Its reason in our words: the provider's description comes in the URL.
            message = views.provider_refusal(exc.error)
            return self._sign_in_page(request, 401, target, message)
        except httpx.HTTPError as exc:
            return self._provider_unreachable(request, target, exc)
        return self._signed_in_as(Session("", person.name, person.may_act), target)

    def _provider_unreachable(self, request: Request, target: str, exc: Exception) -> Response:
        log.warning("identity provider unreachable: %s", exc)
        return self._sign_in_page(request, 503, target, "The identity provider did not answer.")

    async def sign_out(self) -> Response:
        response = RedirectResponse("/sign-in?message=signed_out", status_code=303)
        response.delete_cookie(COOKIE)
        return response

    async def portfolio(self, request: Request) -> HTMLResponse:
        person = _person(request)
        owner = request.query_params.get("owner", "").strip()[:320]
        segment = request.query_params.get("segment", "").strip()[:200]
        scope: dict[str, str | list[str]] = {
            k: v for k, v in (("owner", owner), ("segment", segment)) if v
        }
        figures = await self.scoring.get(person.key, "/v1/portfolio", scope)
        high = await self.scoring.get(
            person.key,
            "/v1/accounts",
            {"risk": "high", "stage": views.SAVABLE, "sort": "change", "limit": "100", **scope},
        )
        attention = views.attention_first(high["accounts"])[:20]
        return self.render(
            request,
            "portfolio.html",
            figures=figures,
            attention=attention,
            owner=owner,
            segment=segment,
        )

    async def accounts(self, request: Request) -> HTMLResponse:
        person = _person(request)
        query = views.list_query(dict(request.query_params))
        params: dict[str, str | list[str]] = {**query, "limit": "50"}
        if cursor := request.query_params.get("cursor"):
            params["cursor"] = cursor
        page = await self.scoring.get(person.key, "/v1/accounts", params)
        return self.render(request, "accounts.html", page=page, query=query)

    async def account(self, request: Request, account_id: str) -> HTMLResponse:
        person = _person(request)
        chosen = request.query_params.get("range", views.DEFAULT_RANGE)
        days = views.RANGES.get(chosen)
        if days is None:
            raise BadInput(f"range must be one of {', '.join(views.RANGES)}")
        path = f"/v1/accounts/{quote(account_id, safe='')}"
        account = await self.scoring.get(person.key, path)
        now = datetime.now(UTC)
        since = (now - timedelta(days=days)).isoformat()
        entries = await self._history(person.key, path, since)
        cards = await self.scorecards.get(lambda: self.scoring.get(person.key, "/v1/scorecards"))
        card = next((c for c in cards if c["ref"] == account.get("scorecard")), None)
        overrides = await self.scoring.get(person.key, f"{path}/overrides")
        found = await self.alerts.get(person.key, "/v1/alerts", {"account_id": account_id})
        return self.render(
            request,
            "account.html",
            account=account,
            series=views.chart_series(entries, now),
            components=views.component_series(entries, now),
            standing=views.standing_series(entries, now),
            zones=views.band_zones(card["definition"] if card else None),
            changes=views.changes(entries),
            overrides=overrides,
            alerts=found["alerts"],
            range=chosen,
            ranges=views.RANGES,
            snoozes=views.SNOOZES,
            override_days=views.OVERRIDE_DAYS,
        )

    async def _history(self, key: str, path: str, since: str) -> list[dict[str, Any]]:
        """Up to 5,000 material changes since ``since``: a year of a busy account."""
        entries: list[dict[str, Any]] = []
        params: dict[str, str | list[str]] = {"since": since, "limit": "1000"}
        for _ in range(5):
            page = await self.scoring.get(key, f"{path}/history", params)
            entries += page["entries"]
            if not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        return entries

    async def inbox(self, request: Request) -> HTMLResponse:
        person = _person(request)
        state = request.query_params.get("state", "open")
        if state not in ("open", "resolved"):
            raise BadInput("state must be open or resolved")
        params: dict[str, str | list[str]] = {"state": state, "limit": "200"}
        if owner := request.query_params.get("owner"):
            params["owner"] = owner
        found = await self.alerts.get(person.key, "/v1/alerts", params)
        alerts = sorted(
            found["alerts"],
            key=lambda a: (a["acked_at"] is not None, views.TIER_ORDER.get(a["tier"], 4)),
        )
        return self.render(
            request, "alerts.html", alerts=alerts, state=state, owner=owner, snoozes=views.SNOOZES
        )

    async def backtest(self, request: Request) -> HTMLResponse:
        person = _person(request)
        report = await run_in_threadpool(read_report, self.settings.console_backtest_report)
        # Not from the cache: this page calls nothing else that checks the person's key.
        cards = await self.scoring.get(person.key, "/v1/scorecards")
        chart = self.settings.console_backtest_chart
        return self.render(
            request,
            "backtest.html",
            report=report,
            in_use={c["ref"] for c in cards if c.get("default")},
            chart=chart is not None and await run_in_threadpool(chart.is_file),
        )

    async def backtest_chart(self) -> Response:
        chart = self.settings.console_backtest_chart
        if chart is None or not await run_in_threadpool(chart.is_file):
            raise StarletteHTTPException(404, "no backtest chart")
        return FileResponse(chart, media_type="image/png")

    async def ack(self, request: Request, alert_id: str) -> Response:
        person = _person(request)
        body = {"by": person.name}
        return await self._act_on_alert(request, alert_id, "ack", body, "acknowledge alerts")

    async def snooze(
        self,
        request: Request,
        alert_id: str,
        duration: Annotated[str, Form(alias="for", max_length=10)],
    ) -> Response:
        if duration not in views.SNOOZES:
            raise BadInput(f"snooze for one of {', '.join(views.SNOOZES)}")
        body = {"for": duration}
        return await self._act_on_alert(request, alert_id, "snooze", body, "snooze alerts")

    async def _act_on_alert(
        self, request: Request, alert_id: str, action: str, body: dict[str, Any], what: str
    ) -> Response:
        """The alerts API's ``action`` on the alert; its new row for htmx, else back to
        the inbox."""
        path = f"/v1/alerts/{quote(alert_id, safe='')}/{action}"
        person = _person(request)
        alert = await self._writing(person, partial(self.alerts.post, person.key, path, body), what)
        if request.headers.get("HX-Request"):
            return self.render(request, "_alert_row.html", alert=alert, snoozes=views.SNOOZES)
        return RedirectResponse("/alerts", status_code=303)

    async def set_override(
        self,
        request: Request,
        account_id: str,
        field: Annotated[str, Form(max_length=10)],
        value: Annotated[str, Form(max_length=20)],
        reason: Annotated[str, Form(max_length=2000)],
        days: Annotated[int, Form(ge=1, le=90)],
    ) -> Response:
        person = _person(request)
        expires = datetime.now(UTC) + timedelta(days=days)
        body = {
            "field": field,
            "value": value,
            "reason": reason,
            "expires_at": expires.isoformat(),
            "created_by": person.name,
        }
        path = f"/v1/accounts/{quote(account_id, safe='')}/overrides"
        await self._writing(
            person, lambda: self.scoring.post(person.key, path, body), "set overrides"
        )
        return RedirectResponse(f"/accounts/{quote(account_id, safe='')}", status_code=303)

    async def lift_override(
        self, request: Request, account_id: str, field: Annotated[str, Form(max_length=10)]
    ) -> Response:
        person = _person(request)
        path = f"/v1/accounts/{quote(account_id, safe='')}/overrides"
        params: dict[str, str | list[str]] = {"by": person.name, "field": field}
        call = partial(self.scoring.delete, person.key, path, params)
        await self._writing(person, call, "lift overrides")
        return RedirectResponse(f"/accounts/{quote(account_id, safe='')}", status_code=303)

    async def _writing(self, person: Session, call: Callable[[], Awaitable[Any]], what: str) -> Any:
        """``call``, unless the person may not act; a refusal for want of scope in words."""
        if not person.may_act:
            group = self.settings.console_oidc_act_group
            needs = f"membership of the {group} group" if group else "an API key with act"
            raise NotAllowed(f"you cannot {what}: that needs {needs}")
        try:
            return await call()
        except NotAllowed:
            raise NotAllowed(f"your key cannot {what}: that needs the act scope") from None

    # --- failures -----------------------------------------------------------------------

    async def same_origin_writes(self, request: Request, call_next: Any) -> Response:
        """A form posted from another site is refused (the cookie is SameSite=Lax too)."""
        origin = request.headers.get("origin")
        if request.method == "POST" and origin and urlsplit(origin).netloc != request.url.netloc:
            return self.render(
                request, "error.html", 403, title="Refused", message="Cross-site form refused."
            )
        response: Response = await call_next(request)
        return response

    async def on_console_error(self, request: Request, exc: ConsoleError) -> Response:
        if isinstance(exc, SignedOut):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            query = urlencode(
                {"next": target if request.method == "GET" else "/", "message": exc.code}
            )
            response = RedirectResponse(f"/sign-in?{query}", status_code=303)
            response.delete_cookie(COOKIE)
            return response
        titles = {403: "Not allowed", 404: "Not found", 400: "Bad request", 503: "Unavailable"}
        title = titles.get(exc.status, "Error")
        return self.render(request, "error.html", exc.status, title=title, message=exc.message)

    async def on_bad_request(self, request: Request, exc: RequestValidationError) -> Response:
        fields = ", ".join(str(e.get("loc", ["?"])[-1]) for e in exc.errors())
        message = f"these fields are missing or not valid: {fields}"
        return self.render(request, "error.html", 400, title="Bad request", message=message)

    async def on_http_error(self, request: Request, exc: StarletteHTTPException) -> Response:
        title = "Not found" if exc.status_code == 404 else "Error"
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return self.render(request, "error.html", exc.status_code, title=title, message=message)

    async def on_unexpected(self, request: Request, exc: Exception) -> Response:
        log.exception("console page failed: %s %s", request.method, request.url.path)
        response = self.render(
            request, "error.html", 500, title="Error", message="Something went wrong; it is logged."
        )
        response.headers.update(security.HEADERS)  # answered outside SecurityHeaders
        return response

    def key_in_url(self, request: Request) -> Response:
        """The answer to a request with an API key in its URL (``KeyInUrlRefusal``)."""
        return self.render(request, "error.html", 400, title="Refused", message=KEY_IN_URL)
