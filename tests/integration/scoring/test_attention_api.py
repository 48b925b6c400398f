"""The attention list, the accounts list's churned, renewal and count options, and the
portfolio's churned row, over a running scoring service on PostgreSQL.

The accounts are written as rows with the columns scoring keeps (no partition, so no
sweep rescores them): what the queries read is exactly what the test wrote."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import httpx
import pytest

from services.scoring import repository
from services.scoring.app import create_app
from services.scoring.models import Account
from shared.db import create_engine, session_factory
from tests.support.clock import FakeClock
from tests.support.scoring_service import settings_for
from tests.support.servers import serve

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

CLOCK = FakeClock()
TODAY = CLOCK.now.date()
KIM = "kim@example.com"
# account: tier, band, risk, stage, renewal in days, 30-day change, reasons, owner
ROWS: dict[str, tuple[Any, ...]] = {
    "s-renewing": ("S", "green", "medium", "steady", 14, -5, ["usage below baseline"], KIM),
    "a-dropped": ("A", "yellow", "low", "steady", 200, -25, [], KIM),
    "c-high": ("C", "red", "high", "steady", None, -3, ["no usage for 14 days"], KIM),
    "b-renewing-yellow": ("B", "yellow", "low", "renewal_window", 40, 0, [], KIM),
    "b-medium": ("B", "yellow", "medium", "steady", None, -2, ["a failed payment"], KIM),
    "churned": ("C", "red", "high", "churned", 5, -90, ["subscription canceled"], KIM),
    "green-renewing": ("A", "green", "low", "steady", 10, 0, [], KIM),
    "yellow-late": ("B", "yellow", "low", "steady", 90, -1, [], KIM),
    "lee-high": ("A", "red", "high", "steady", None, -30, ["health red for 5 days"], "lee@x"),
}


async def _write_rows(database: str) -> None:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session, session.begin():
            for account_id, row in ROWS.items():
                tier, band, risk, stage, renews, change, reasons, owner = row
                renewal = TODAY + timedelta(days=renews) if renews is not None else None
                state = {
                    "account_id": account_id,
                    "traits": {"name": [account_id.upper(), "s"]},
                    "current": {"risk_reasons": reasons},
                }
                session.add(
                    Account(
                        account_id=account_id,
                        state=state,
                        updated_at=CLOCK.now,
                        health_score={"green": 80, "yellow": 55, "red": 20}[band],
                        band=band,
                        tier=tier,
                        risk=risk,
                        stage=stage,
                        owner=owner,
                        mrr_minor=1000,
                        renewal_day=repository.day_number(renewal),
                        change_30d=change,
                    )
                )
    finally:
        await engine.dispose()


async def test_the_attention_list_says_who_needs_attention_and_why_in_one_read(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    await _write_rows(scoring_db)
    settings = settings_for(kafka, scoring_db, topics, scoring_portfolio_max_age_s=0)
    async with (
        serve(create_app(settings, CLOCK)) as url,
        httpx.AsyncClient(base_url=url) as api,
    ):
        kims = (await api.get("/v1/attention", params={"owner": KIM})).json()
        everyone = (await api.get("/v1/attention")).json()
        one = (await api.get("/v1/attention", params={"limit": "1"})).json()
        nobody = (await api.get("/v1/attention", params={"owner": "no@x"})).json()
        portfolio = (await api.get("/v1/portfolio")).json()
        not_churned = await _ids(api, {"churned": "false"})
        churned = await _ids(api, {"churned": "true"})
        renewing = await _ids(
            api,
            {
                "renews_from": TODAY.isoformat(),
                "renews_until": (TODAY + timedelta(days=30)).isoformat(),
                "sort": "renewal",
            },
        )
        counted = (await api.get("/v1/accounts", params={"count": "true", "limit": "2"})).json()
        by_renewal = await _all_pages(api, {"sort": "renewal", "order": "desc", "limit": "2"})

    listed = [a["account_id"] for a in kims["accounts"]]
    # S before A before B before C; medium risk on B is not enough, nor is a yellow
    # account renewing in 90 days, a green one renewing soon or a churned one.
    assert listed == ["s-renewing", "a-dropped", "b-renewing-yellow", "c-high"]
    why = {a["account_id"]: a["why"] for a in kims["accounts"]}
    assert why["s-renewing"] == ["usage below baseline"]
    assert why["a-dropped"] == ["down 25 points in 30 days"]
    assert why["b-renewing-yellow"] == ["renews in 40 days, health yellow"]
    assert why["c-high"] == ["no usage for 14 days"]
    s_renewing = kims["accounts"][0]
    assert s_renewing["name"] == "S-RENEWING"
    assert s_renewing["renewal_date"] == (TODAY + timedelta(days=14)).isoformat()
    # Everyone's: lee's high-risk A before kim's A at low risk.
    assert [a["account_id"] for a in everyone["accounts"]][:3] == [
        "s-renewing",
        "lee-high",
        "a-dropped",
    ]
    assert len(one["accounts"]) == 1 and nobody["accounts"] == []
    assert portfolio["bands"]["churned"] == 1 and portfolio["risks"]["churned"] == 1
    assert portfolio["risks"]["high"] == 2  # c-high and lee-high; not the churned one
    assert "churned" not in not_churned and len(not_churned) == len(ROWS) - 1
    assert churned == ["churned"]
    assert sorted(renewing) == ["churned", "green-renewing", "s-renewing"]
    assert counted["count"] == {"accounts": len(ROWS), "more": False}
    assert len(counted["accounts"]) == 2
    days = {a: r[4] for a, r in ROWS.items()}
    assert [days[a] for a in by_renewal if days[a] is not None] == sorted(
        (d for d in days.values() if d is not None), reverse=True
    )


async def _ids(api: httpx.AsyncClient, params: dict[str, str]) -> list[str]:
    page = (await api.get("/v1/accounts", params=params)).json()
    return [a["account_id"] for a in page["accounts"]]


async def _all_pages(api: httpx.AsyncClient, params: dict[str, str]) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(len(ROWS)):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = (await api.get("/v1/accounts", params=query)).json()
        seen += [a["account_id"] for a in page["accounts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    return seen


def test_day_numbers_round_trip() -> None:
    day = date(2026, 12, 8)
    assert repository.day_of(repository.day_number(day)) == day
    assert repository.day_number(None) is None
