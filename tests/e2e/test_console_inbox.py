"""The alerts inbox in a real browser, over the real alerts service fed score changes
on Kafka: the most severe first, then the most valuable tier, tier-up notices folded
under one row; a snoozed alert leaves the open view for the Snoozed tab; the console
follows the system's dark mode; "/" puts the cursor in the page's search field."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

from shared.auth import Scope
from shared.scores import Risk, ScoreChange, Tier
from tests.e2e.stack import migrate, service_env
from tests.e2e.test_console import _sign_in
from tests.support.alerts_messages import enriched_change, facts, later
from tests.support.auth import make_keys_file
from tests.support.browser import chromium, csp_checked
from tests.support.kafka import produce
from tests.support.processes import ServiceProcess
from tests.support.servers import WebhookReceiver, serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

DAY = timedelta(days=1)


def _named(account_id: str, name: str, **more: object) -> dict[str, object]:
    return {"account_id": account_id, "account": facts(name=name, mrr_minor=100_000), **more}


def _changes() -> list[ScoreChange]:
    """Two high risks (tiers C and S), a sharp drop (medium) and two tier ups."""
    high = {"risk": Risk.high, "risk_reasons": ["unpaid for 10 days"], "health_score": 30}
    dropping = enriched_change(**_named("drop-a", "Drop A"), health_score=85)  # type: ignore[arg-type]
    up_s = enriched_change(**_named("up-s", "Up S"), tier=Tier.A, value_score=83)  # type: ignore[arg-type]
    up_a = enriched_change(**_named("up-a", "Up A"), tier=Tier.B)  # type: ignore[arg-type]
    return [
        enriched_change(**_named("high-c", "High C"), tier=Tier.C, **high),  # type: ignore[arg-type]
        enriched_change(**_named("high-s", "High S"), tier=Tier.S, **high),  # type: ignore[arg-type]
        dropping,
        later(dropping, 3 * DAY, health_score=55),
        up_s,
        later(up_s, DAY, tier=Tier.S, value_score=83),
        up_a,
        later(up_a, DAY, tier=Tier.A, components={"engagement": 66, "recency": 80}),
    ]


@dataclass
class Inbox:
    url: str
    key: str


@pytest.fixture
async def inbox(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Inbox]:
    keys_file, keys = make_keys_file(tmp_path, {"kim": [Scope.read, Scope.act]})
    async with serve(WebhookReceiver().app()) as hook:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/h")
        env["VITALS_API_KEYS_FILE"] = str(keys_file)
        migrate(env)
        scoring, alerts = (ServiceProcess(n, env, tmp_path) for n in ("scoring", "alerts"))
        console_env = {
            **env,
            "VITALS_CONSOLE_SCORING_URL": scoring.url,
            "VITALS_CONSOLE_ALERTS_URL": alerts.url,
        }
        console = ServiceProcess("console", console_env, tmp_path)
        services = [scoring, alerts, console]
        for service in services:
            service.start()
        try:
            for service in services:
                await service.wait_ready()
            changes = _changes()
            records = [(c.account_id.encode(), c.to_bytes()) for c in changes]
            await produce(kafka, topics["scores_topic"], records)
            await wait_for(lambda: _open_alerts(alerts.url, keys["kim"], 5), 60, "five alerts")
            yield Inbox(console.url, keys["kim"])
        finally:
            for service in services:
                service.kill()


async def _open_alerts(url: str, key: str, count: int) -> bool:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=headers) as client:
        found = await client.get("/v1/alerts", params={"state": "open"})
    return len(found.json()["alerts"]) >= count


async def _rows(page: Page) -> list[str]:
    """The accounts of the inbox's rows, in order (folded ones too)."""
    names = page.get_by_test_id("inbox").get_by_test_id("alert-account")
    return await names.all_text_contents()


async def test_the_inbox_puts_the_most_severe_and_valuable_first_and_folds_tier_ups(
    inbox: Inbox,
) -> None:
    async with chromium() as browser, csp_checked(browser, inbox.url) as page:
        await _sign_in(page, inbox.url, inbox.key)
        await page.goto(f"{inbox.url}/alerts")

        assert await _rows(page) == ["High S", "High C", "Drop A", "Up S", "Up A"]
        severities = page.locator("[data-testid=inbox] > tbody:first-of-type > tr[data-severity]")
        assert [await r.get_attribute("data-severity") for r in await severities.all()] == [
            "high",
            "high",
            "medium",
        ]
        folded = page.get_by_test_id("tier-ups")
        await expect(page.get_by_test_id("tier-ups-summary")).to_have_text("2 tier-up notices")
        up_s = folded.get_by_test_id("alert-row").first
        await expect(up_s).to_be_hidden()
        await page.get_by_test_id("tier-ups-summary").click()
        await expect(up_s).to_be_visible()
        await expect(up_s).to_contain_text("Tier A -> S (up): revenue contribution")
        await expect(up_s).not_to_contain_text("(+0)")
        await expect(folded.get_by_test_id("alert-row").nth(1)).to_contain_text(
            "engagement 66 reached the line for A"
        )


async def test_a_snoozed_alert_leaves_the_open_view_for_the_snoozed_tab(inbox: Inbox) -> None:
    async with chromium() as browser, csp_checked(browser, inbox.url) as page:
        await _sign_in(page, inbox.url, inbox.key)
        await page.goto(f"{inbox.url}/alerts")
        row = page.get_by_test_id("inbox").get_by_test_id("alert-row").first
        await expect(row.get_by_test_id("alert-account")).to_have_text("High S")
        await row.get_by_label("snooze for").select_option("1d")
        await row.get_by_role("button", name="Snooze").click()
        await expect(row.get_by_test_id("alert-state")).to_contain_text("snoozed until")

        await page.reload()
        assert "High S" not in await _rows(page)
        assert (await _rows(page))[0] == "High C"
        await page.get_by_role("link", name="Snoozed").click()
        await expect(page.get_by_role("link", name="Snoozed")).to_have_attribute(
            "aria-current", "page"
        )
        assert await _rows(page) == ["High S"]
        await expect(page.get_by_test_id("alert-state")).to_contain_text("snoozed until")


async def test_dark_mode_follows_the_system_and_slash_focuses_search(
    inbox: Inbox, tmp_path: Path
) -> None:
    async with chromium() as browser, csp_checked(browser, inbox.url) as page:
        await page.emulate_media(color_scheme="dark")
        await _sign_in(page, inbox.url, inbox.key)
        await page.goto(f"{inbox.url}/alerts")
        await page.screenshot(path=tmp_path / "inbox-dark.png", full_page=True)
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(v) for v in background.removeprefix("rgb(").rstrip(")").split(","))
        assert max(red, green, blue) < 60, background  # a dark page
        ink = await page.evaluate("getComputedStyle(document.body).color")
        assert min(int(v) for v in ink.removeprefix("rgb(").rstrip(")").split(",")) > 180, ink
        assert (tmp_path / "inbox-dark.png").stat().st_size > 0

        await page.emulate_media(color_scheme="light")
        light = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert light == "rgb(255, 255, 255)"

        search = page.get_by_label("owner")
        await page.locator("h1").click()
        await page.keyboard.press("/")
        await expect(search).to_be_focused()
        await page.keyboard.type("kim/x")  # typing in a field: "/" is a character there
        await expect(search).to_have_value("kim/x")
