"""The console's pages: sign-in, portfolio, accounts, an account's story, alerts inbox,
and the backtest's report; ``create_app`` puts them together.

Pages are rendered on the server (Jinja2) with htmx for in-page actions and uPlot for
charts, both shipped under ``static/vendor``: nothing loads from elsewhere. The routes
are in ``routes/``, a router per resource; what they share is one ``ConsoleContext``
(``context.py``) on ``app.state.console``; failures are answered by ``failures.py``.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlencode

import httpx
from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from services.console import failures, security, views
from services.console.client import AlertsApi, IngestApi, ScoringApi
from services.console.context import ConsoleContext, signed_in
from services.console.metrics import TimedTemplates, TimedTransport
from services.console.oidc import Provider
from services.console.routes import (
    accounts,
    alerts,
    backtest,
    ops,
    portfolio,
    sign_in,
    stripe,
    work,
)
from services.console.session import Sessions
from services.console.settings import ConsoleSettings
from shared.http import RequestMetrics
from shared.openapi import SESSION, document_security, operation_id

HERE = Path(__file__).parent
SIGN_IN_COOKIE = "vitals_sign_in"  # the provider sign-in's state, until it comes back


def create_app(settings: ConsoleSettings) -> FastAPI:
    secret = settings.console_session_key
    sessions = Sessions(
        secret.get_secret_value().encode() if secret else Fernet.generate_key(),
        timedelta(hours=settings.console_session_hours),
    )
    timeout = httpx.Timeout(settings.console_api_timeout_s)
    scoring_client = httpx.AsyncClient(
        base_url=str(settings.console_scoring_url),
        timeout=timeout,
        transport=TimedTransport("scoring"),
    )
    alerts_client = httpx.AsyncClient(
        base_url=str(settings.console_alerts_url),
        timeout=timeout,
        transport=TimedTransport("alerts"),
    )

    ingest_client = None
    if settings.console_ingest_url is not None:
        ingest_client = httpx.AsyncClient(
            base_url=str(settings.console_ingest_url),
            timeout=timeout,
            transport=TimedTransport("ingest"),
        )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with scoring_client, alerts_client:
            try:
                yield
            finally:
                if ingest_client is not None:
                    await ingest_client.aclose()

    app = FastAPI(
        title="Vitals console",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        generate_unique_id_function=operation_id,
    )
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
    app.state.console = ConsoleContext(
        settings,
        sessions,
        ScoringApi(scoring_client),
        AlertsApi(alerts_client),
        _templates(),
        provider,
        IngestApi(ingest_client) if ingest_client is not None else None,
    )
    app.include_router(ops.router)
    app.include_router(sign_in.router)
    if provider is not None:
        app.include_router(sign_in.provider_router)
    app.include_router(portfolio.router)
    app.include_router(accounts.router)
    app.include_router(alerts.router)
    app.include_router(work.router)
    app.include_router(backtest.router)
    app.include_router(stripe.router)
    failures.install(app)
    document_security(app, {signed_in: SESSION}, gates=None)
    app.add_middleware(security.KeyInUrlRefusal, refusal=failures.key_in_url)
    app.add_middleware(RequestMetrics)  # refusals counted too
    app.add_middleware(security.SecurityHeaders)  # the outermost: on every answer
    security.redact_logs()
    return app


def _templates() -> TimedTemplates:
    templates = TimedTemplates(directory=HERE / "templates")
    env = templates.env
    env.filters["money"] = views.money
    env.filters["signed_money"] = views.signed_money
    env.globals["moved"] = views.moved
    env.globals["moved_share"] = views.moved_share
    env.globals["names_of"] = views.names_of
    env.globals["no_figures"] = views.NO_FIGURES
    env.filters["path"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = views.when
    env.globals["urlencode"] = urlencode
    return templates
