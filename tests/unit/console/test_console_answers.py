"""The console reads every API answer into the API's own model: an answer that is not
that model gets a clear page and a log line naming the service, the call and what
differs (never the answer's values), not a trace. The APIs here are stand-ins behind
the console's own clients, put in its context as ``create_app`` would."""

from __future__ import annotations

import importlib
import logging
import pkgutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace

import httpx
import pytest

import services.console
from services.console import security
from services.console.app import create_app
from services.console.client import AlertsApi, ScoringApi
from services.console.context import ConsoleContext
from services.console.settings import ConsoleSettings
from shared.auth import Scope, generate_key

KEY, _ = generate_key("kim", {Scope.read, Scope.act})
NO_ACCOUNTS: dict[str, object] = {"accounts": [], "next_cursor": None}
UNREADABLE = "answered in a shape this console cannot read"


@dataclass
class Apis:
    """Both APIs: each path's answer (a JSON value, or bytes as they are), else 404;
    ``failure`` raised instead of answering, when set."""

    answers: dict[str, object] = field(default_factory=lambda: {"/v1/accounts": NO_ACCOUNTS})
    failure: Exception | None = None

    def answer(self, request: httpx.Request) -> httpx.Response:
        if self.failure is not None:
            raise self.failure
        if request.url.path not in self.answers:
            return httpx.Response(404, json={"message": "not found"})
        answer = self.answers[request.url.path]
        if isinstance(answer, bytes):
            return httpx.Response(200, content=answer, headers={"content-type": "text/plain"})
        return httpx.Response(200, json=answer)


@asynccontextmanager
async def signed_in(apis: Apis) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the console over ``apis``, signed in as Kim."""
    app = create_app(ConsoleSettings(environment="test"))
    transport = httpx.MockTransport(apis.answer)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://scoring") as scoring,
        httpx.AsyncClient(transport=transport, base_url="http://alerts") as alerts,
    ):
        kept: ConsoleContext = app.state.console
        app.state.console = replace(kept, scoring=ScoringApi(scoring), alerts=AlertsApi(alerts))
        console = httpx.ASGITransport(app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=console, base_url="http://console") as client:
            signed = await client.post("/sign-in", data={"name": "Kim", "key": KEY})
            assert signed.status_code == 303, signed.text
            yield client


# (page, API path, its answer, the service, where it differs): one of each model read.
MISSHAPEN = [
    ("/", "/v1/portfolio", {"accounts": 3}, "scoring", "mrr_minor: Field required"),
    (
        "/accounts",
        "/v1/accounts",
        {"accounts": [{"account_id": "acme"}], "next_cursor": None},
        "scoring",
        "accounts.0.health_score: Field required",
    ),
    (
        "/accounts/acme",
        "/v1/accounts/acme",
        {"account_id": "acme", "health_score": "very good"},
        "scoring",
        "health_score: Input should be a valid integer",
    ),
    ("/alerts", "/v1/alerts", {"alerts": {"id": "a-1"}}, "alerts", "alerts: Input should be"),
    ("/backtest", "/v1/scorecards", {"ref": "default@2"}, "scoring", "Input should be a valid"),
    ("/", "/v1/portfolio", b"<html>a proxy's page</html>", "scoring", "Invalid JSON"),
]


@pytest.mark.parametrize(("page", "path", "answer", "service", "differs"), MISSHAPEN)
async def test_an_answer_that_is_not_the_api_s_model_gets_a_clear_page_and_a_log_line(
    caplog: pytest.LogCaptureFixture,
    page: str,
    path: str,
    answer: object,
    service: str,
    differs: str,
) -> None:
    apis = Apis()
    async with signed_in(apis) as client:
        apis.answers[path] = answer
        shown = await client.get(page)

    assert shown.status_code == 500
    assert "<h1>Error</h1>" in shown.text and f"The {service} service {UNREADABLE}" in shown.text
    assert "Traceback" not in shown.text
    _assert_secured(shown)
    [logged] = [r for r in caplog.records if r.name == "services.console.client"]
    assert logged.levelno == logging.ERROR and logged.exc_info is None
    message = logged.getMessage()
    assert f"the {service} service's answer to GET {path} is not its" in message, message
    assert differs in message, message
    assert "very good" not in message and "proxy" not in message  # no values, only where


async def test_an_action_s_answer_that_is_not_the_api_s_model_gets_the_page_too(
    caplog: pytest.LogCaptureFixture,
) -> None:
    apis = Apis()
    async with signed_in(apis) as client:
        apis.answers["/v1/alerts/a-1/ack"] = {"id": "a-1", "state": "snoozing"}
        shown = await client.post("/alerts/a-1/ack", headers={"HX-Request": "true"})

    assert shown.status_code == 500 and f"The alerts service {UNREADABLE}" in shown.text
    [logged] = [r for r in caplog.records if r.name == "services.console.client"]
    assert "POST /v1/alerts/a-1/ack is not its AlertRead" in logged.getMessage()
    assert "state: Input should be 'open' or 'resolved'" in logged.getMessage()


async def test_answers_of_the_api_s_models_are_read_and_shown() -> None:
    apis = Apis()
    apis.answers["/v1/alerts"] = {"alerts": [_alert()]}
    async with signed_in(apis) as client:
        inbox = await client.get("/alerts")
        apis.answers["/v1/alerts/a-1/ack"] = _alert(acked_at="2026-11-02T10:00:00Z", acked_by="Kim")
        acked = await client.post("/alerts/a-1/ack", headers={"HX-Request": "true"})

    assert inbox.status_code == 200 and "Acme is at high risk" in inbox.text
    assert "2026-11-01 09:00 UTC" in inbox.text  # read as a time, shown in UTC
    assert acked.status_code == 200 and "acknowledged by Kim" in acked.text


async def test_an_unexpected_failure_gets_the_page_and_the_headers_and_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    apis = Apis()
    async with signed_in(apis) as client:
        apis.failure = RuntimeError("a fault of the console's own")
        shown = await client.get("/accounts")

    assert shown.status_code == 500 and "Something went wrong; it is logged." in shown.text
    _assert_secured(shown)
    [logged] = [r for r in caplog.records if r.name == "services.console.failures"]
    assert logged.exc_info is not None and "GET /accounts" in logged.getMessage()


def test_every_console_logger_hides_keys() -> None:
    """A module's ``log`` that ``security.LOGGERS`` misses would write keys as they are."""
    modules = pkgutil.walk_packages(services.console.__path__, "services.console.")
    loggers = {
        log.name
        for module in modules
        if isinstance(
            log := getattr(importlib.import_module(module.name), "log", None), logging.Logger
        )
    }

    assert loggers and loggers <= set(security.LOGGERS), loggers - set(security.LOGGERS)


def _assert_secured(answer: httpx.Response) -> None:
    for name, value in security.HEADERS.items():
        assert answer.headers.get(name) == value, name


def _alert(**changes: str) -> dict[str, object]:
    alert: dict[str, object] = {
        "id": "a-1",
        "account_id": "acme",
        "rule": "churn_risk_raised",
        "episode": 1,
        "state": "open",
        "severity": "high",
        "health_score": 31,
        "band": "red",
        "tier": "A",
        "risk": "high",
        "segment": None,
        "owner_email": "kim@example.com",
        "owner_slack": None,
        "summary": "Acme is at high risk",
        "details": None,
        "opened_at": "2026-11-01T09:00:00Z",
        "resolved_at": None,
        "last_notified_at": None,
        "notifications": 1,
        "acked_at": None,
        "acked_by": None,
        "snoozed_until": None,
    }
    return alert | changes
