"""The console in a real browser, over the real services on Kafka and PostgreSQL:
sign in, find an account from the portfolio, read its chart and drivers, acknowledge
and snooze alerts, set and lift an override; a refused key; a read-only key cannot
set an override; bad input and unknown accounts get a page, not a trace; a key in a URL
is refused and not logged. No page reports a Content Security Policy violation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import oidc_provider_mock
import pytest
from playwright.async_api import Page, expect

from bench import portfolio
from services.backtest import run
from services.scoring import repository
from shared.auth import Scope
from shared.db import create_engine, session_factory
from tests.e2e.stack import migrate, service_env
from tests.support.auth import make_keys_file
from tests.support.browser import chromium, csp_checked
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess
from tests.support.servers import WebhookReceiver, serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

UNPAID = {
    "account_id": "acme",
    "kind": "billing",
    "name": "invoice.payment_failed",
    "occurred_at": "2026-11-10T10:00:00Z",
    "billing": {
        "payment": "failed",
        "subscription_status": "past_due",
        "seats": 20,
        "mrr_minor": 90_000,
        "currency": "EUR",
    },
}
ACME_TRAITS = {
    "account_id": "acme",
    "kind": "account",
    "name": "account.updated",
    "occurred_at": "2026-11-10T09:00:00Z",
    "traits": {"name": "Acme Corp", "owner_csm_email": "kim@example.com", "segment": "smb"},
}


@dataclass
class Console:
    url: str
    alerts: ServiceProcess
    keys: dict[str, str]
    log: Path  # the console process's


PEOPLE = [  # as the identity provider knows them; alice's group lets her act
    oidc_provider_mock.User(sub="alice", claims={"name": "Alice", "groups": ["csm", "staff"]}),
    oidc_provider_mock.User(sub="bob", claims={"name": "Bob", "groups": ["staff"]}),
]


@pytest.fixture
async def console(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Console]:
    keys_file, keys = make_keys_file(
        tmp_path,
        {
            "kim": [Scope.read, Scope.act],
            "lee": [Scope.read, Scope.admin],
            "viewer": [Scope.read],
            "pipeline": [Scope.ingest],
            "console": [Scope.read, Scope.act],  # for people the provider signs in
        },
    )
    receiver = WebhookReceiver()
    with oidc_provider_mock.run_server_in_thread(user_claims=PEOPLE) as provider:
        async with serve(receiver.app()) as hook:
            env = service_env(
                kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/h"
            )
            env["VITALS_API_KEYS_FILE"] = str(keys_file)
            migrate(env)
            ingest, scoring, alerts = (
                ServiceProcess(n, env, tmp_path) for n in ("ingest", "scoring", "alerts")
            )
            report, chart = await asyncio.to_thread(_backtest_report, tmp_path)
            console_env = {
                **env,
                "VITALS_CONSOLE_SCORING_URL": scoring.url,
                "VITALS_CONSOLE_ALERTS_URL": alerts.url,
                "VITALS_CONSOLE_BACKTEST_REPORT": str(report),
                "VITALS_CONSOLE_BACKTEST_CHART": str(chart),
                "VITALS_CONSOLE_OIDC_ISSUER": f"http://localhost:{provider.server_port}",
                "VITALS_CONSOLE_OIDC_CLIENT_ID": "vitals-console",
                "VITALS_CONSOLE_OIDC_CLIENT_SECRET": "local-secret",
                "VITALS_CONSOLE_OIDC_ACT_GROUP": "csm",
                "VITALS_CONSOLE_API_KEY": keys["console"],
            }
            console = ServiceProcess("console", console_env, tmp_path)
            services = [ingest, scoring, alerts, console]
            for service in services:
                service.start()
            try:
                for service in services:
                    await service.wait_ready()
                await _seed(ingest, alerts, keys)
                await _kept_30_days_ago(database)
                yield Console(console.url, alerts, keys, console.log_path)
            finally:
                for service in services:
                    service.kill()


async def _kept_30_days_ago(database: str) -> date:
    """The portfolio kept as the day 30 days ago's, as that day's first sweep would have."""
    day = datetime.now(UTC).date() - timedelta(days=30)
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session, session.begin():
            assert await repository.record_portfolio_day(session, day)
    finally:
        await engine.dispose()
    return day


def _backtest_report(tmp_path: Path) -> tuple[Path, Path]:
    """A real report and chart: the shipped scorecards on a small generated portfolio."""
    data = tmp_path / "portfolio"
    portfolio.write(data, accounts=20, days=70, seed=3)
    outputs = run.Outputs(report=tmp_path / "report.json", chart=tmp_path / "report.png")
    inputs = run.Inputs(segment=[data / "segment.jsonl"], stripe=[data / "stripe.jsonl"])
    run.backtest(inputs, run.load_models([]), outputs, progress=False)
    assert outputs.report is not None and outputs.chart is not None
    return outputs.report, outputs.chart


async def _seed(ingest: ServiceProcess, alerts: ServiceProcess, keys: dict[str, str]) -> None:
    events = [
        ACME_TRAITS,
        UNPAID,
        native_usage_json(account_id="acme"),
        native_usage_json(account_id="calm"),
    ]
    headers = {"Authorization": f"Bearer {keys['pipeline']}"}
    async with httpx.AsyncClient(base_url=ingest.url, headers=headers) as client:
        posted = await client.post("/v1/events", json={"events": events})
    assert posted.status_code == 202 and posted.json()["errors"] == [], posted.text

    async def alerted() -> bool:
        return any(a["state"] == "open" for a in await _acme_alerts(alerts.url, keys["kim"]))

    await wait_for(alerted, 60, "acme's alert")


async def _acme_alerts(alerts_url: str, key: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=alerts_url, headers=headers) as client:
        found = await client.get("/v1/alerts", params={"account_id": "acme"})
    alerts: list[dict[str, Any]] = found.json()["alerts"]
    return alerts


async def _sign_in(page: Page, url: str, key: str, name: str = "Kim") -> None:
    await page.goto(url)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your API key").fill(key)
    await page.get_by_role("button", name="Sign in").click()


async def test_a_csm_finds_an_account_reads_why_and_acknowledges_its_alert(
    console: Console,
) -> None:
    async with chromium() as browser, csp_checked(browser, console.url) as page:
        await _sign_in(page, console.url, console.keys["kim"])
        await expect(page.get_by_test_id("signed-in-as")).to_have_text("Kim")
        await page.get_by_label("owner").fill("kim@example.com")
        await page.get_by_label("segment").fill("smb")
        await page.get_by_role("button", name="Show").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(
            "Portfolio of kim@example.com in smb"
        )
        since = (datetime.now(UTC).date() - timedelta(days=30)).isoformat()
        await expect(page.get_by_test_id("movement")).to_contain_text(f"Since {since}")
        await expect(page.get_by_test_id("risks")).to_contain_text("high")

        await page.get_by_test_id("attention").get_by_role("link", name="Acme Corp").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Acme Corp")
        await expect(page.get_by_test_id("risk")).to_have_text("high")
        await expect(page.get_by_test_id("risk-reasons")).to_contain_text("failed payment")
        await expect(page.get_by_test_id("drivers")).to_contain_text("points")
        chart = page.get_by_test_id("health-chart")
        await expect(chart).to_have_attribute("data-drawn", "true")
        await expect(chart.locator("canvas")).to_have_count(1)
        components = page.get_by_test_id("components-chart")
        await expect(components).to_have_attribute("data-drawn", "true")
        standing = page.get_by_test_id("standing-chart")
        await expect(standing).to_have_attribute("data-drawn", "true")
        await expect(standing).to_have_attribute("data-risk", "high")

        row = page.get_by_test_id("account-alerts").get_by_test_id("alert-row").first
        await row.get_by_role("button", name="Acknowledge").click()
        await expect(row.get_by_test_id("alert-state")).to_contain_text("acknowledged by Kim")

        await page.get_by_role("button", name="Sign out").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Sign in")
        await expect(page.get_by_role("alert")).to_have_text("Signed out.")

        await _sign_in(page, console.url, console.keys["viewer"], name="Vic")
        await page.goto(f"{console.url}/accounts/acme")
        await _set_tier_override(page)
        await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        await expect(page.get_by_role("alert")).to_contain_text("needs the act scope")

    found = await _acme_alerts(console.alerts.url, console.keys["kim"])
    assert [a["acked_by"] for a in found if a["state"] == "open"] == ["Kim"]


async def _set_tier_override(page: Page, tier: str = "C") -> None:
    form = page.get_by_test_id("override-form")
    await form.get_by_label("field").select_option("tier")
    await form.get_by_label("value").select_option(tier)
    await form.get_by_label("reason").fill("strategic logo, renewal in talks")
    await form.get_by_role("button", name="Set override").click()


async def test_an_admin_sets_and_lifts_an_override_and_a_csm_snoozes_an_alert(
    console: Console,
) -> None:
    async with chromium() as browser, csp_checked(browser, console.url) as page:
        await _sign_in(page, console.url, console.keys["lee"], name="Lee")
        await page.goto(f"{console.url}/accounts/acme")
        computed = await page.get_by_test_id("tier").inner_text()
        chosen = "B" if computed == "C" else "C"
        await _set_tier_override(page, chosen)
        await expect(page.get_by_test_id("tier")).to_have_text(chosen)
        overrides = page.get_by_test_id("overrides")
        await expect(overrides).to_contain_text("strategic logo, renewal in talks")
        await expect(overrides).to_contain_text("active")

        await page.get_by_role("button", name="Lift the tier override").click()
        await expect(overrides).to_contain_text("lifted by Lee")
        await expect(page.get_by_test_id("tier")).to_have_text(computed)

        await page.goto(f"{console.url}/alerts")
        row = page.get_by_test_id("inbox").get_by_test_id("alert-row").first
        await row.get_by_label("snooze for").select_option("1d")
        await row.get_by_role("button", name="Snooze").click()
        await expect(row.get_by_test_id("alert-state")).to_contain_text("snoozed until")


async def test_a_refused_key_a_key_in_a_url_bad_filters_and_unknown_accounts_get_a_clear_page(
    console: Console,
) -> None:
    key = console.keys["kim"]
    async with chromium() as browser, csp_checked(browser, console.url) as page:
        await _sign_in(page, console.url, "vk_not_a_real_key")
        await expect(page.get_by_role("alert")).to_have_text("That key was refused.")

        await _sign_in(page, console.url, key)
        in_url = await page.goto(f"{console.url}/accounts/{key}")
        assert in_url is not None and in_url.status == 400
        await expect(page.get_by_role("alert")).to_contain_text("API keys never go in a URL")
        await page.goto(f"{console.url}/accounts")
        await page.get_by_label("search").fill("acme c")
        await page.get_by_role("button", name="Show").click()
        found = page.get_by_test_id("accounts")
        await expect(found.get_by_role("link")).to_have_text(["Acme Corp"])

        bad = await page.goto(f"{console.url}/accounts?tier=Z")
        assert bad is not None and bad.status == 400
        await expect(page.get_by_role("heading", level=1)).to_have_text("Bad request")
        unknown = await page.goto(f"{console.url}/accounts/no-such-account")
        assert unknown is not None and unknown.status == 404
        await expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
        await expect(page.locator("body")).not_to_contain_text("Traceback")

    async def logged_redacted() -> bool:
        return "GET /accounts/(redacted) HTTP/1.1" in console.log.read_text()

    await wait_for(logged_redacted, 10, "the refused request's access log line, redacted")
    assert key not in console.log.read_text()


async def test_the_backtest_page_shows_the_report_of_the_scorecard_in_use_and_its_chart(
    console: Console,
) -> None:
    async with chromium() as browser, csp_checked(browser, console.url) as page:
        await _sign_in(page, console.url, console.keys["viewer"], name="Vic")
        await page.get_by_role("link", name="Backtest").click()

        report = page.get_by_test_id("backtest-report")
        await expect(report.get_by_role("row").first).to_contain_text("default@2 (in use)")
        await expect(report).to_contain_text("flagged high >= 30 days before")
        await expect(report).to_contain_text("alerts per CSM per week")
        await expect(page.get_by_test_id("backtest-chart")).to_be_visible()
        loaded = "() => document.querySelector('[data-testid=backtest-chart]').naturalWidth > 0"
        await page.wait_for_function(loaded, timeout=10_000)  # the PNG came, and decoded


async def test_people_sign_in_through_the_identity_provider_and_its_groups_decide_who_acts(
    console: Console,
) -> None:
    async with chromium() as browser, csp_checked(browser, console.url) as page:
        await page.goto(console.url)
        await _through_provider(page, "alice")
        await expect(page.get_by_test_id("signed-in-as")).to_have_text("Alice")
        await page.goto(f"{console.url}/accounts/acme")
        row = page.get_by_test_id("account-alerts").get_by_test_id("alert-row").first
        await row.get_by_role("button", name="Acknowledge").click()
        await expect(row.get_by_test_id("alert-state")).to_contain_text("acknowledged by Alice")
        await page.get_by_role("button", name="Sign out").click()

        await _through_provider(page, "bob")
        await expect(page.get_by_test_id("signed-in-as")).to_have_text("Bob")
        await page.goto(f"{console.url}/accounts/acme")
        await _set_tier_override(page)
        await expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
        await expect(page.get_by_role("alert")).to_contain_text("membership of the csm group")
        await page.get_by_role("button", name="Sign out").click()

        await _through_provider(page, "Deny")
        await expect(page.get_by_role("alert")).to_have_text(
            "Sign-in through the identity provider failed: access was denied."
        )

    found = await _acme_alerts(console.alerts.url, console.keys["kim"])
    assert [a["acked_by"] for a in found if a["state"] == "open"] == ["Alice"]


async def _through_provider(page: Page, choice: str) -> None:
    """From the sign-in page, the provider's form: a known person's button, or Deny."""
    await page.get_by_role("link", name="Sign in with your company account").click()
    await page.get_by_role("button", name=choice).click()
