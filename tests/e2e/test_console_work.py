"""My work in a real browser, over the real ingest, scoring, alerts and console on
Kafka and PostgreSQL: an S account's owner is sent a failed payment, scoring makes its
churn risk high, the alerts service's shipped save play gives its owner a task due
the next business day; the owner finds it on My work, completes it as "saved" in
Chromium, the tasks API lists it among the saved S tasks, and the account page shows
its history (made, then completed by the owner). With a service level that makes the
task overdue at once and no grace, it is escalated: one notice reaches the local
webhook receiver, and My work shows it overdue and escalated."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from services.alerts.tasks.escalation import ESCALATION_RULE
from shared.auth import Scope
from tests.e2e.stack import console_services, migrate, running, service_env
from tests.e2e.test_console import _sign_in
from tests.support.alerts_receivers import HttpReceiver
from tests.support.auth import make_keys_file
from tests.support.browser import chromium, csp_checked
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

OWNER = "kim@example.com"
TRAITS = {
    "account_id": "acme",
    "kind": "account",
    "name": "account.updated",
    "occurred_at": "2026-11-10T09:00:00Z",
    "traits": {"name": "Acme Corp", "owner_csm_email": OWNER, "segment": "enterprise"},
}
PAID = {  # first a paying account, so the portfolio ranks acme when its risk rises
    "account_id": "acme",
    "kind": "billing",
    "name": "invoice.paid",
    "occurred_at": "2026-11-10T08:00:00Z",
    "billing": {
        "payment": "paid",
        "subscription_status": "active",
        "seats": 200,
        "mrr_minor": 2_000_000,
        "currency": "EUR",
    },
}
UNPAID = {  # then unpaid past the scorecard's grace: high churn risk
    "account_id": "acme",
    "kind": "billing",
    "name": "invoice.payment_failed",
    "occurred_at": "2026-11-10T10:00:00Z",
    "billing": {
        "payment": "failed",
        "subscription_status": "past_due",
        "seats": 200,
        "mrr_minor": 2_000_000,
        "currency": "EUR",
    },
}
SMALL = {  # a second, small paying account: acme alone brings the S share of revenue
    "account_id": "calm",
    "kind": "billing",
    "name": "invoice.paid",
    "occurred_at": "2026-11-10T10:00:00Z",
    "billing": {
        "payment": "paid",
        "subscription_status": "active",
        "mrr_minor": 5_000,
        "currency": "EUR",
    },
}


OVERDUE_AT_ONCE = {  # a 0-day service level on a seven-day week ending at midnight
    "VITALS_ALERTS_TASK_SERVICE_LEVELS": '{"S": 0, "A": 0, "B": 0, "C": 0}',
    "VITALS_ALERTS_TASK_GRACE": '{"S": 0, "A": 0, "B": 0, "C": 0}',
    "VITALS_ALERTS_BUSINESS_WEEKDAYS": "Mon Tue Wed Thu Fri Sat Sun",
    "VITALS_ALERTS_BUSINESS_DAY_END": "00:00",
    "VITALS_ALERTS_TASK_ESCALATION_INTERVAL_S": "0.2",
    "VITALS_ALERTS_DISPATCH_INTERVAL_S": "0.2",
}


@dataclass
class Stack:
    console: str
    alerts: str
    scoring: str
    key: str
    receiver: HttpReceiver  # the alerts' webhook channel


@asynccontextmanager
async def _stack(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path, more: dict[str, str]
) -> AsyncIterator[Stack]:
    """The four services over a migrated database, ``more`` in their environment; acme
    made an S account (it brings most of the revenue), then its payment failed."""
    keys_file, keys = make_keys_file(
        tmp_path, {"kim": [Scope.read, Scope.act], "pipeline": [Scope.ingest]}
    )
    receiver = HttpReceiver()
    async with serve(receiver.app()) as hook:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/h")
        env["VITALS_API_KEYS_FILE"] = str(keys_file)
        # Scoring reads the portfolio that tiers rank accounts in at each sweep.
        env["VITALS_SCORING_SWEEP_INTERVAL_S"] = "2"
        env |= more
        migrate(env)
        ingest = ServiceProcess("ingest", env, tmp_path)
        scoring, alerts, console = console_services(env, tmp_path)
        async with running([ingest, scoring, alerts, console]):
            await _post(ingest.url, keys["pipeline"], [TRAITS, PAID, SMALL])
            await wait_for(lambda: _tiered(scoring.url, keys["kim"]), 60, "acme in tier S")
            await _post(ingest.url, keys["pipeline"], [UNPAID, native_usage_json()])
            yield Stack(console.url, alerts.url, scoring.url, keys["kim"], receiver)


@pytest.fixture
async def stack(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Stack]:
    async with _stack(kafka, database, topics, tmp_path, {}) as running_stack:
        yield running_stack


@pytest.fixture
async def overdue_stack(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Stack]:
    async with _stack(kafka, database, topics, tmp_path, OVERDUE_AT_ONCE) as running_stack:
        yield running_stack


async def _post(ingest: str, key: str, events: list[dict[str, Any]]) -> None:
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=ingest, headers=headers) as client:
        posted = await client.post("/v1/events", json={"events": events})
    assert posted.status_code == 202 and posted.json()["errors"] == [], posted.text


async def _tiered(scoring: str, key: str) -> bool:
    """Acme is in tier S: it brings most of the portfolio's revenue."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=scoring, headers=headers) as client:
        found = await client.get("/v1/accounts/acme")
    return found.status_code == 200 and found.json()["tier"] == "S"


async def _tasks(stack: Stack, **params: str) -> list[dict[str, Any]]:
    headers = {"Authorization": f"Bearer {stack.key}"}
    async with httpx.AsyncClient(base_url=stack.alerts, headers=headers) as client:
        found = await client.get("/v1/tasks", params=params)
    assert found.status_code == 200, found.text
    tasks: list[dict[str, Any]] = found.json()["tasks"]
    return tasks


def _next_business_day(day: date) -> date:
    """The shipped calendar's: Monday to Friday, no holidays."""
    day += timedelta(days=1)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    return day


async def _save_task(stack: Stack, **more: str) -> dict[str, Any]:
    """The owner's task of the S save play on acme, once the alerts service made it."""
    found: list[dict[str, Any]] = []

    async def tasked() -> bool:
        found[:] = await _tasks(stack, owner=OWNER, account_id="acme", **more)
        return any(t["step"] == "call_sponsor" for t in found)

    try:
        await wait_for(tasked, 90, "acme's save task for its owner")
    except AssertionError:
        headers = {"Authorization": f"Bearer {stack.key}"}
        async with httpx.AsyncClient(base_url=stack.scoring, headers=headers) as client:
            acme = (await client.get("/v1/accounts/acme")).text
        raise AssertionError(f"acme: {acme}; tasks: {await _tasks(stack)}") from None
    return next(t for t in found if t["step"] == "call_sponsor")


async def test_an_owner_completes_the_save_task_of_an_s_account_as_saved(stack: Stack) -> None:
    task = await _save_task(stack, state="open")
    assert (task["playbook"], task["tier"]) == ("churn_save_s", "S")
    made = datetime.fromisoformat(task["created_at"])
    due = datetime.fromisoformat(task["due_at"])
    assert due.date() == _next_business_day(made.date()) and (due.hour, due.minute) == (17, 0)

    async with chromium() as browser, csp_checked(browser, stack.console) as page:
        await _sign_in(page, stack.console, stack.key, name=OWNER)
        await page.get_by_role("link", name="My work").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("My work")
        row = page.get_by_test_id("work-upcoming").locator(f"#task-{task['id']}")
        await expect(row.get_by_test_id("task-account")).to_have_text("Acme Corp")
        await expect(row.get_by_test_id("task-title")).to_contain_text("executive sponsor")
        await expect(row).to_contain_text(f"{due:%Y-%m-%d} 17:00 UTC")
        await expect(row.get_by_test_id("task-state")).to_have_text("open")

        await row.get_by_text("Act").click()
        form = row.get_by_test_id("complete-form")
        await form.get_by_label("outcome").select_option("saved")
        await form.get_by_label("note").fill("sponsor call booked, payment promised")
        await form.get_by_role("button", name="Complete").click()
        await expect(page.get_by_test_id("work-done")).to_have_text("Task completed.")
        await expect(page.locator(f"#task-{task['id']}")).to_have_count(0)

        saved = await _tasks(stack, outcome="saved", tier="S")
        assert [t["id"] for t in saved] == [task["id"]]
        assert saved[0]["note"] == "sponsor call booked, payment promised"

        await page.goto(f"{stack.console}/accounts/acme")
        done = page.locator(f"#task-{task['id']}")
        await expect(done.get_by_test_id("task-state")).to_have_text("done: saved")
        history = done.get_by_test_id("task-history").locator("tr")
        await expect(history).to_have_count(3)  # the header, made, completed
        await expect(history.nth(1)).to_contain_text("created")
        await expect(history.nth(2).locator("td").nth(1)).to_have_text(OWNER)
        await expect(history.nth(2).locator("td").nth(2)).to_have_text("completed")
        await expect(history.nth(2)).to_contain_text("outcome: - -> saved")


async def test_an_overdue_task_past_its_grace_is_escalated_once_and_shown_so(
    overdue_stack: Stack,
) -> None:
    stack = overdue_stack
    task = await _save_task(stack)

    async def notices() -> list[dict[str, Any]]:
        bodies = [r.json() for r in stack.receiver.requests]
        return [b for b in bodies if b.get("rule") == ESCALATION_RULE]

    await wait_for(notices, 30, "the escalation notice at the webhook")
    async with chromium() as browser, csp_checked(browser, stack.console) as page:
        await _sign_in(page, stack.console, stack.key, name=OWNER)
        await page.goto(f"{stack.console}/work?tier=S")
        row = page.get_by_test_id("work-overdue").locator(f"#task-{task['id']}")
        await expect(row.get_by_test_id("task-due")).to_contain_text("overdue by")
        await expect(row.get_by_test_id("task-state")).to_have_text("open, escalated")

    ours = [n for n in await notices() if n["alert_id"] == task["id"]]
    assert len(ours) == 1, ours
    assert ours[0]["type"] == "alert.escalated"
    assert ours[0]["summary"].startswith("Task overdue: Call the executive sponsor")
