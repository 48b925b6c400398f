"""The console's first screen on the demo portfolio (``make demo``'s, written by its own
code to the scoring database of a running stack), in Chromium: csm1 signs in and the
portfolio opens on their book, with their S account renewing within 60 days at medium
risk and their A account down 25 points in 30 days at the top, each with why; the
churned accounts have a row of their own; the accounts list leaves churned accounts
out and counts; its CSV export of over 10,000 accounts holds every one of them."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Locator, Page, expect
from sqlalchemy import text

from bench import demo
from bench.sweep import clone
from services.backtest.replay import Replay
from services.scoring.settings import ScoringSettings
from shared.db import create_engine
from tests.e2e.stack import console_services, migrated_env, running
from tests.support.browser import chromium, csp_checked

# The demo's replay of 300 accounts over the year so far takes about 3 minutes alone.
pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(1500)]

CSM1 = demo.STORY_OWNER
DEMO_ACCOUNTS = 300  # make demo's own size: the tiers are shares of its revenue
EXPORTED_AT_LEAST = 10_000


@dataclass
class Stack:
    console: str
    scoring: str
    database: str


@pytest.fixture
async def stack(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Stack]:
    async with migrated_env(kafka, database, topics) as env:
        replay, history = await asyncio.to_thread(_demo, tmp_path / "demo")
        settings = ScoringSettings(scoring_database_url=database, topic_partitions=3)
        await demo.store(replay, history, settings)
        scoring, alerts, console = console_services(env, tmp_path)
        async with running([scoring, alerts, console]):
            yield Stack(console.url, scoring.url, database)


def _demo(out: Path) -> tuple[Replay, demo.History]:
    return demo.replayed(DEMO_ACCOUNTS, 1, out)


async def _sign_in(page: Page, url: str, name: str) -> None:
    """Keys are not checked on this stack (no keys file), as on ``make run``."""
    await page.goto(url)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_label("Your API key").fill("k")
    await page.get_by_role("button", name="Sign in").click()


async def test_csm1_opens_on_their_book_with_who_needs_them_and_why(stack: Stack) -> None:
    today = datetime.now(UTC).date()
    async with chromium() as browser, csp_checked(browser, stack.console) as page:
        await page.set_viewport_size({"width": 1440, "height": 900})
        await _sign_in(page, stack.console, CSM1)
        await expect(page.get_by_role("heading", name=f"Portfolio of {CSM1}")).to_be_visible()
        attention = page.get_by_test_id("attention")
        await expect(attention).to_be_visible()
        # The list is the first thing: its top is on the first screen.
        box = await attention.bounding_box()
        assert box is not None and box["y"] < 450, box
        rows = await _rows(attention)
        by_id = {row["link"]: row for row in rows}

        strategic = by_id[f"/accounts/{demo.STRATEGIC_STORY}"]
        assert strategic["tier"] == "S"
        assert "usage over 14 days below 75% of its own baseline" in strategic["why"]
        renews_on = _day(strategic["renewal"])
        assert today <= renews_on <= today + timedelta(days=60)
        dropped = by_id[f"/accounts/{demo.DROP_STORY}"]
        assert dropped["tier"] == "A"
        fell = re.search(r"down (\d+) points in 30 days", dropped["why"])
        assert fell is not None and int(fell[1]) >= 25, dropped
        assert all(row["owner"] == CSM1 for row in rows)
        assert rows.index(strategic) < rows.index(dropped)  # S before A

        # Churned accounts are a row of their own, and not counted as high risk.
        await expect(page.get_by_test_id("churned-risks")).to_be_visible()
        risks = await _figures(page, "risks")
        assert risks["churned"] > 0
        scoring_churned = await _count(stack.scoring, {"owner": CSM1, "churned": "true"})
        assert risks["churned"] == scoring_churned

        # The S account's page: medium risk, its story over 30 days, drivers in words.
        await attention.get_by_role("link", name=re.compile("Customer 90001")).click()
        await expect(page.get_by_test_id("risk")).to_have_text("medium")
        await expect(page.get_by_test_id("story")).to_contain_text("Over 30 days: health")
        drivers = await page.get_by_test_id("drivers").inner_text()
        assert not re.search(r"\d\.\d+ -> \d\.\d+", drivers), drivers  # no ratios as decimals
        await expect(page.get_by_test_id("last-payment")).to_contain_text("paid on")
        await expect(page.get_by_test_id("health-chart")).to_have_attribute("data-drawn", "true")
        legend = await page.locator(".u-legend").first.inner_text()
        assert "--" not in legend, legend

        # Everyone's portfolio is one link away.
        await page.goto(f"{stack.console}/?owner=")
        await expect(page.get_by_role("heading", name="Portfolio", exact=True)).to_be_visible()

        # The accounts list: churned left out by default, a count, the CSV export.
        await page.goto(f"{stack.console}/accounts")
        count = await page.get_by_test_id("result-count").inner_text()
        not_churned = await _count(stack.scoring, {"churned": "false"})
        assert count.startswith(f"{not_churned:,} accounts"), count
        stages = await page.get_by_test_id("accounts").locator("td:nth-child(7)").all_inner_texts()
        assert stages and "churned" not in stages

    total = await _cloned_past(stack.database, EXPORTED_AT_LEAST)
    exported = await _export(stack.console, CSM1)
    assert len(exported) == total >= EXPORTED_AT_LEAST
    assert len({row["account_id"] for row in exported}) == total


async def _rows(table: Locator) -> list[dict[str, str]]:
    """The attention table's rows: each cell's text by its column, and the account link."""
    rows = []
    for row in await table.locator("tr").all():
        cells = await row.locator("td").all_inner_texts()
        if len(cells) != 6:
            continue
        link = await row.locator("a").first.get_attribute("href")
        _, why, renewal, tier, _, owner = cells
        rows.append(
            {"link": link or "", "why": why, "renewal": renewal, "tier": tier, "owner": owner}
        )
    return rows


async def _figures(page: Page, name: str) -> dict[str, int]:
    found = {}
    for row in await page.get_by_test_id(name).locator("tr").all():
        cells = await row.locator("td").all_inner_texts()
        if len(cells) >= 2:
            found[cells[0].strip()] = int(cells[1].replace(",", ""))
    return found


def _day(shown: str) -> date:
    return date.fromisoformat(shown.split(" ")[0])


async def _count(scoring: str, params: dict[str, str]) -> int:
    async with httpx.AsyncClient(base_url=scoring) as api:
        page = (await api.get("/v1/accounts", params={**params, "count": "true"})).json()
    counted: int = page["count"]["accounts"]
    return counted


async def _cloned_past(database: str, at_least: int) -> int:
    """The demo's accounts cloned in SQL (as the benchmarks do) past ``at_least``."""
    engine = create_engine(database)
    try:
        await clone(engine, at_least)
        async with engine.connect() as connection:
            return int(await connection.scalar(text("SELECT count(*) FROM accounts")) or 0)
    finally:
        await engine.dispose()


async def _export(console: str, name: str) -> list[dict[str, str]]:
    """Every account, churned or not, as the accounts list's CSV export streams it."""
    async with httpx.AsyncClient(base_url=console, timeout=120) as client:
        signed = await client.post("/sign-in", data={"name": name, "key": "k"})
        assert signed.status_code == 303, signed.text
        async with client.stream("GET", "/accounts.csv", params={"churned": "any"}) as answer:
            assert answer.status_code == 200
            assert answer.headers["content-type"].startswith("text/csv")
            body = "".join([chunk async for chunk in answer.aiter_text()])
    return list(csv.DictReader(io.StringIO(body)))
