"""The scoring API over a running service: filters, sorts, pages, history, portfolio."""

from datetime import date, timedelta

import httpx
import pytest
from sqlalchemy import select

from services.scoring.app import create_app
from services.scoring.models import PortfolioDay
from shared.db import create_engine, session_factory
from shared.events import Event
from tests.support.clock import FakeClock
from tests.support.kafka import produce
from tests.support.scoring_builders import billing, traits, usage
from tests.support.scoring_service import applied, records, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

MRR = {"a1": 500_000, "a2": 100_000, "a3": 250_000, "a4": 10_000, "a5": 40_000}
CANCELED = {"a4", "a5"}


def _events(clock: FakeClock) -> list[Event]:
    found: list[Event] = []
    for account, mrr in MRR.items():
        status = "canceled" if account in CANCELED else "active"
        found += [
            billing(
                account_id=account, at=clock.now, mrr_minor=mrr, seats=2, subscription_status=status
            ),
            traits(
                account_id=account,
                at=clock.now,
                segment="smb" if mrr < 200_000 else "enterprise",
                owner_csm_email="kim@example.com",
                name=account.upper(),
            ),
            usage(account_id=account, at=clock.now, user_id="u1"),
        ]
    return found


async def test_accounts_filter_sort_and_page_and_the_portfolio_adds_up(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records(_events(clock)))
        for account in MRR:
            await wait_for(applied(api, account, 3), 30, f"{account}'s events")

        by_mrr = await _all_pages(api, {"sort": "mrr", "order": "desc", "limit": "2"})
        red = (await api.get("/v1/accounts", params={"band": "red"})).json()["accounts"]
        smb_red = (await api.get("/v1/accounts", params={"segment": "smb", "risk": "high"})).json()
        by_owner = (await api.get("/v1/accounts", params={"owner": "kim@example.com"})).json()
        bad_cursor = await api.get("/v1/accounts", params={"cursor": "nope"})
        stale = {
            flag: (await api.get("/v1/accounts", params={"stale": flag})).json()["accounts"]
            for flag in ("true", "false")
        }
        searched = {
            q: [
                a["account_id"]
                for a in (await api.get("/v1/accounts", params={"q": q})).json()["accounts"]
            ]
            for q in ("A3", "a", "%", "a_")
        }
        portfolio = (await api.get("/v1/portfolio")).json()
        kims = (await api.get("/v1/portfolio", params={"owner": "kim@example.com"})).json()
        nobodys = (await api.get("/v1/portfolio", params={"owner": "no@example.com"})).json()
        cards = (await api.get("/v1/scorecards")).json()
        one = (await api.get("/v1/accounts/a1")).json()
        openapi = (await api.get("/openapi.json")).json()

    assert by_mrr == sorted(MRR, key=MRR.__getitem__, reverse=True)
    assert {a["account_id"] for a in red} == CANCELED
    assert {a["account_id"] for a in smb_red["accounts"]} == CANCELED
    assert len(by_owner["accounts"]) == len(MRR) and by_owner["next_cursor"] is None
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"] == "bad_cursor"
    assert (len(stale["true"]), len(stale["false"])) == (0, len(MRR))  # all heard from now
    # By name in any case ("A3" is a3's name, its id is lower case), by id prefix, and
    # with LIKE's wildcards taken literally.
    assert (searched["A3"], searched["%"], searched["a_"]) == (["a3"], [], [])
    assert sorted(searched["a"]) == sorted(MRR)
    assert portfolio["accounts"] == len(MRR)
    assert portfolio["mrr_minor"] == sum(MRR.values())
    assert (kims["accounts"], kims["mrr_minor"]) == (len(MRR), sum(MRR.values()))
    assert (nobodys["accounts"], nobodys["mrr_minor"], nobodys["tiers"]) == (0, 0, {})
    assert sum(t["revenue_share"] for t in portfolio["tiers"].values()) == pytest.approx(1)
    # The canceled accounts are churned: a row of their own, out of the bands.
    assert portfolio["bands"]["churned"] == len(CANCELED) and "red" not in portfolio["bands"]
    assert [c["ref"] for c in cards] == ["default@1"] and cards[0]["default"] is True
    assert one["name"] == "A1" and one["tier"] is not None and one["stage"] == "onboarding"
    assert one["drivers"] and one["scorecard"] == "default@1"
    assert one["active_users_30d"] == 1 and one["active_users_estimated"] is False
    assert {"/v1/accounts", "/v1/portfolio", "/v1/scorecards"} <= set(openapi["paths"])


async def _all_pages(api: httpx.AsyncClient, params: dict[str, str]) -> list[str]:
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        page = (
            await api.get(
                "/v1/accounts", params={**params, **({"cursor": cursor} if cursor else {})}
            )
        ).json()
        seen += [a["account_id"] for a in page["accounts"]]
        cursor = page["next_cursor"]
        if cursor is None:
            return seen
    raise AssertionError(f"pagination did not end: {seen}")


async def test_history_over_a_time_range_and_unknown_accounts(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        first = [billing(at=clock.now, seats=4, subscription_status="active"), usage(at=clock.now)]
        await produce(kafka, topics["events_topic"], records(first))
        await wait_for(applied(api, "acme", 2), 30, "the first events")
        clock.advance(timedelta(days=2))
        later = [usage(at=clock.now, user_id=f"u{i}") for i in range(2, 5)]
        await produce(kafka, topics["events_topic"], records(later))
        await wait_for(applied(api, "acme", 5), 30, "the later events")

        everything = (await api.get("/v1/accounts/acme/history")).json()["entries"]
        since = (clock.now - timedelta(days=1)).isoformat()
        recent = (await api.get("/v1/accounts/acme/history", params={"since": since})).json()
        paged = (await api.get("/v1/accounts/acme/history", params={"limit": "1"})).json()
        missing = await api.get("/v1/accounts/nobody/history")

    assert len(everything) >= 2
    assert [e["sequence"] for e in everything] == sorted(e["sequence"] for e in everything)
    assert all(e["computed_at"] >= since.replace("+00:00", "Z") for e in recent["entries"])
    assert 1 <= len(recent["entries"]) < len(everything)
    assert recent["entries"][-1]["components"]["engagement"] == 100
    assert len(paged["entries"]) == 1 and paged["next_cursor"] == "1"
    assert missing.status_code == 404


async def test_the_portfolio_moves_against_the_day_its_first_sweep_kept_30_days_before(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics, scoring_portfolio_max_age_s=0)
    kims = [e for e in _events(clock) if e.account_id in ("a1", "a2")]  # 600,000 a month
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records(kims))
        for account in ("a1", "a2"):
            await wait_for(applied(api, account, 3), 30, f"{account}'s events")
        first_day = (await api.get("/v1/portfolio")).json()
        clock.advance(timedelta(days=1))  # the next day's first sweep keeps both
        kept_on = clock.now.date()
        await wait_for(lambda: _kept(scoring_db, kept_on), 30, "the day's portfolio kept")
        clock.advance(timedelta(days=30))
        newcomer = traits(account_id="a3", at=clock.now, owner_csm_email="lee@example.com")
        await produce(kafka, topics["events_topic"], records([newcomer]))
        await wait_for(applied(api, "a3", 1), 30, "a3's event")
        everyone = (await api.get("/v1/portfolio")).json()
        kim = (await api.get("/v1/portfolio", params={"owner": "kim@example.com"})).json()
        lee = (await api.get("/v1/portfolio", params={"owner": "lee@example.com"})).json()
        smb = (await api.get("/v1/portfolio", params={"segment": "smb"})).json()
        kims_smb = {"owner": "kim@example.com", "segment": "smb"}
        kim_smb = (await api.get("/v1/portfolio", params=kims_smb)).json()

    assert first_day["earlier"] is None  # no day kept before today yet
    earlier = everyone["earlier"]
    assert earlier["day"] == kept_on.isoformat()
    assert (earlier["accounts"], earlier["mrr_minor"]) == (2, 600_000)
    assert sum(earlier["risks"].values()) == 2 and sum(everyone["risks"].values()) == 3
    assert everyone["accounts"] == 3
    assert (kim["earlier"]["accounts"], kim["accounts"]) == (2, 2)
    assert (lee["earlier"]["accounts"], lee["accounts"]) == (0, 1)
    # a2 (100,000 a month) is kim's one smb account, then and now
    assert (smb["earlier"]["mrr_minor"], smb["mrr_minor"]) == (100_000, 100_000)
    assert (kim_smb["earlier"]["accounts"], kim_smb["accounts"]) == (1, 1)


async def _kept(database: str, day: date) -> bool:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            found = await session.scalar(select(PortfolioDay.day).where(PortfolioDay.day == day))
    finally:
        await engine.dispose()
    return found is not None
