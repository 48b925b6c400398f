"""The inbox's CSV export on the real alerts service over PostgreSQL: 3,100 alerts written
to its database, exported by a console on uvicorn per tab and filter, every alert of the
tab once, read from the alerts API a keyset page at a time. Scoring is the stand-in of
``conftest`` (sign-in only asks it whether the key reads)."""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import Request, Response

from services.alerts.app import MIGRATIONS
from services.alerts.app import create_app as create_alerts_app
from services.alerts.models import Alert
from services.console.app import create_app
from services.console.routes.alerts import CSV_COLUMNS, CSV_PAGE
from services.console.settings import ConsoleSettings
from shared.db import create_engine, session_factory
from shared.migrations import upgrade_to_head
from tests.integration.console.conftest import Apis, RunningConsole
from tests.support.apps import alerts_settings
from tests.support.servers import is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

NOW = datetime.now(UTC).replace(microsecond=0)
OPEN, SNOOZED, RESOLVED = 2_600, 300, 200


def _alert(n: int, state: str, **fields: Any) -> Alert:
    """Alert ``n``; seven share each opening minute, so pages end inside a tie."""
    return Alert(
        id=f"alert-{n:05d}",
        account_id=f"acct-{n:05d}",
        rule="churn_risk_raised",
        episode=1,
        state=state,
        severity="high",
        health_score=30,
        band="red",
        tier="SABC"[n % 4],
        risk="high",
        owner_email="kim@example.com" if n % 2 else "lee@example.com",
        summary=f"Churn risk high, {n}",
        opened_at=NOW - timedelta(days=1, minutes=n // 7),
        notifications=1,
        last_event={"account": {"name": f"Account {n}", "mrr_minor": 123_456, "currency": "usd"}},
        **fields,
    )


@pytest.fixture
async def alerts(kafka: str, database: str, topics: dict[str, str]) -> dict[str, set[str]]:
    """The ids of the alerts written, by the inbox's tab."""
    engine = create_engine(database)
    await upgrade_to_head(engine, MIGRATIONS)
    rows = [_alert(n, "open") for n in range(OPEN)]
    rows += [
        _alert(n, "open", snoozed_until=NOW + timedelta(days=1))
        for n in range(OPEN, OPEN + SNOOZED)
    ]
    rows += [
        _alert(n, "resolved", resolved_at=NOW, acked_by="Kim", acked_at=NOW)
        for n in range(OPEN + SNOOZED, OPEN + SNOOZED + RESOLVED)
    ]
    async with session_factory(engine)() as session, session.begin():
        session.add_all(rows)
    await engine.dispose()
    tabs: dict[str, set[str]] = {"open": set(), "snoozed": set(), "resolved": set()}
    for row in rows:
        tab = "snoozed" if row.snoozed_until else row.state
        tabs[tab].add(row.id)
    return tabs


@pytest.fixture
async def console(
    kafka: str, database: str, topics: dict[str, str], alerts: dict[str, set[str]]
) -> AsyncIterator[tuple[RunningConsole, list[str], str]]:
    """A console over the real alerts service; the list is every alerts-list URL asked."""
    asked: list[str] = []
    alerts_app = create_alerts_app(alerts_settings(kafka=kafka, database=database, topics=topics))

    @alerts_app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        if request.url.path == "/v1/alerts":
            asked.append(str(request.url))
        response: Response = await call_next(request)
        return response

    apis = Apis()
    async with serve(apis.app()) as scoring_url, serve(alerts_app) as alerts_url:
        settings = ConsoleSettings(
            environment="test", console_scoring_url=scoring_url, console_alerts_url=alerts_url
        )
        async with serve(create_app(settings)) as url:
            running = RunningConsole(url, apis)
            async with running.client() as client:
                await wait_for(lambda: is_ready(client), 30, "the console and alerts ready")
            yield running, asked, alerts_url


def _read(body: str) -> list[dict[str, str]]:
    reader = csv.DictReader(io.StringIO(body))
    assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
    return list(reader)


async def test_each_tab_exports_every_alert_once_a_page_at_a_time(
    console: tuple[RunningConsole, list[str], str], alerts: dict[str, set[str]]
) -> None:
    running, asked, alerts_url = console
    exported: dict[str, list[dict[str, str]]] = {}
    async with running.signed_in() as client:
        inbox = await client.get("/alerts", params={"state": "snoozed", "tier": "S"})
        for tab in alerts:
            asked.clear()
            answer = await client.get("/alerts.csv", params={"state": tab})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"] == "text/csv; charset=utf-8"
            assert "attachment" in answer.headers["content-disposition"]
            exported[tab] = _read(answer.text)
            assert len(asked) == max(1, math.ceil(len(alerts[tab]) / int(CSV_PAGE))), asked
        kims_a = await client.get("/alerts.csv", params={"owner": "KIM@example.com", "tier": "A"})
        bad = await client.get("/alerts.csv", params={"tier": "Z"})
    async with httpx.AsyncClient(base_url=alerts_url) as api:
        bad_cursor = await api.get("/v1/alerts", params={"cursor": "bm90IG91cnM="})

    assert 'href="/alerts.csv?state=snoozed&amp;owner=&amp;tier=S"' in inbox.text
    for tab, ids in alerts.items():
        counted = Counter(row["alert_id"] for row in exported[tab])
        assert set(counted) == ids, tab
        assert max(counted.values()) == 1, tab
    assert len(exported["open"]) == OPEN > 5 * int(CSV_PAGE)
    opened = [row["opened_at"] for row in exported["open"]]
    assert opened == sorted(opened, reverse=True)  # newest first, as the API lists them
    first = exported["resolved"][0]
    n = int(first["alert_id"].removeprefix("alert-"))
    assert (first["account_id"], first["account_name"], first["tier"]) == (
        f"acct-{n:05d}",
        f"Account {n}",
        "SABC"[n % 4],
    )
    assert (first["mrr"], first["currency"], first["severity"], first["rule"]) == (
        "1234.56",
        "USD",
        "high",
        "churn_risk_raised",
    )
    assert (first["state"], first["acknowledged_by"], first["summary"]) == (
        "resolved",
        "Kim",
        f"Churn risk high, {n}",
    )
    assert all(row["snoozed_until"] for row in exported["snoozed"])
    assert not any(row["snoozed_until"] for row in exported["open"])
    # Kim's (odd) accounts of tier A (n % 4 == 1): 650, over two pages.
    kims = Counter(row["alert_id"] for row in _read(kims_a.text))
    assert set(kims) == {f"alert-{n:05d}" for n in range(OPEN) if n % 4 == 1}
    assert max(kims.values()) == 1
    assert bad.status_code == 400 and "tier must be one of S, A, B, C" in bad.text
    assert (bad_cursor.status_code, bad_cursor.json()["error"]) == (400, "bad_cursor")
