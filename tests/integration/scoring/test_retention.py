"""Revenue retention and renewals on PostgreSQL, through scoring's application layer
(the path the consumer takes), read through the running service's API.

Home currency USD; 1 EUR = 1.10 USD; GBP has no rate. February, by hand (USD cents):

    starting     1,000 (usd-steady) + 2,000 (usd-expand) + 3,300 (eur-contract:
                 3,000 EUR) + 1,100 (eur-churn: 1,000 EUR)          = 7,400
    new          700 (usd-new)
    expansion    500 (usd-expand: 2,000 -> 2,500)
    contraction  1,100 (eur-contract: 3,000 -> 2,000 EUR)
    churn        1,100 (eur-churn canceled)
    GRR = (7,400 - 1,100 - 1,100) / 7,400; NRR = (7,400 + 500 - 1,100 - 1,100) / 7,400
    movement = 700 + 500 - 1,100 - 1,100 = -1,000 = ending 6,400 - starting 7,400
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.ingest.domain import Limits as IngestLimits
from services.ingest.sources.stripe.mapping import (
    StripeAccounts,
    map_stripe_event,
    read_stripe_event,
)
from services.scoring.app import MIGRATIONS, create_app
from services.scoring.domain import Limits
from services.scoring.retention import repository
from services.scoring.retention.computation import retention
from services.scoring.retention.currency import RatesFile
from services.scoring.scorecard import load_scorecards
from services.scoring.service import AccountWork, Scoring
from services.scoring.settings import SHIPPED_SCORECARDS
from services.scoring.store import Kept, PostgresScoringStore
from shared.db import create_engine, session_factory
from shared.events import Event
from shared.migrations import upgrade_database
from shared.scores import Trigger
from tests.support.clock import FakeClock
from tests.support.ingest_apps import invoice, price, stripe_event, subscription
from tests.support.scoring_builders import billing, traits
from tests.support.scoring_service import settings_for
from tests.support.servers import serve

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

JAN = datetime(2026, 1, 10, 12, tzinfo=UTC)
FEB = datetime(2026, 2, 10, 12, tzinfo=UTC)
# account: currency, January MRR (None: none yet), February MRR (0: canceled)
ACCOUNTS: dict[str, tuple[str, int | None, int]] = {
    "usd-steady": ("USD", 1000, 1000),
    "usd-expand": ("USD", 2000, 2500),
    "eur-contract": ("EUR", 3000, 2000),
    "eur-churn": ("EUR", 1000, 0),
    "usd-new": ("USD", None, 700),
    "gbp-steady": ("GBP", 500, 500),
}


def _month(at: datetime, index: int) -> list[Event]:
    events = []
    for account, (currency, *mrrs) in ACCOUNTS.items():
        mrr = mrrs[index]
        if mrr is None:
            continue
        status = "canceled" if mrr == 0 else "active"
        events.append(
            billing(
                account_id=account,
                at=at,
                mrr_minor=mrr,
                currency=currency,
                subscription_status=status,
            )
        )
        tier = "kim@example.com" if currency == "USD" else "lee@example.com"
        events.append(traits(account_id=account, at=at, owner_csm_email=tier))
    return events


async def _process(database: str, batches: Sequence[tuple[datetime, list[Event]]]) -> None:
    """Each batch in its own transaction, as the consumer flushes them."""
    scoring = Scoring(load_scorecards(SHIPPED_SCORECARDS), Limits())
    kept = Kept(100)
    engine = create_engine(database)
    try:
        for now, events in batches:
            work: dict[str, AccountWork[None]] = {}
            for event in events:
                work.setdefault(event.account_id, AccountWork()).events.append((event, None))
            async with session_factory(engine)() as session, session.begin():
                await scoring.process(
                    PostgresScoringStore(session, kept), work, now, Trigger.events
                )
    finally:
        await engine.dispose()


def _rates(tmp_path: Path) -> Path:
    path = tmp_path / "rates.yaml"
    path.write_text("as_of: 2026-02-01\nhome: USD\nrates:\n  EUR: 1.10\n")
    return path


async def _get(url: str, path: str, params: dict[str, str]) -> Any:
    async with httpx.AsyncClient(base_url=url) as api:
        response = await api.get(path, params=params)
        assert response.status_code == 200, response.text
        return response.json()


async def test_grr_and_nrr_in_home_currency_add_up_to_the_mrr_movement(
    kafka: str, scoring_db: str, topics: dict[str, str], tmp_path: Path
) -> None:
    await _process(scoring_db, [(JAN, _month(JAN, 0)), (FEB, _month(FEB, 1))])
    settings = settings_for(kafka, scoring_db, topics, scoring_currency_rates_path=_rates(tmp_path))
    async with serve(create_app(settings, FakeClock())) as url:
        months = await _get(url, "/v1/retention", {"since": "2026-01-01", "until": "2026-02-01"})
        quarter = await _get(
            url, "/v1/retention", {"since": "2026-01-01", "until": "2026-01-01", "grain": "quarter"}
        )
        by_owner = await _get(
            url, "/v1/retention", {"since": "2026-02-01", "until": "2026-02-01", "by": "owner"}
        )
        async with httpx.AsyncClient(base_url=url) as api:
            backwards = {"since": "2026-03-01", "until": "2026-01-01"}
            refused = await api.get("/v1/retention", params=backwards)

    assert (refused.status_code, refused.json()["error"]) == (422, "invalid_request")
    jan, feb = months["periods"]
    assert (months["home_currency"], months["rates_as_of"]) == ("USD", "2026-02-01")
    assert jan["starting_mrr_minor"] == 0 and jan["new_mrr_minor"] == 7400
    assert feb["starting_mrr_minor"] == 7400
    parts = ("new", "expansion", "contraction", "churn")
    assert [feb[f"{p}_mrr_minor"] for p in parts] == [700, 500, 1100, 1100]
    assert feb["grr"] == pytest.approx((7400 - 1100 - 1100) / 7400)
    assert feb["nrr"] == pytest.approx((7400 + 500 - 1100 - 1100) / 7400)
    movement = feb["ending_mrr_minor"] - feb["starting_mrr_minor"]
    assert movement == feb["movement_mrr_minor"] == 700 + 500 - 1100 - 1100 == -1000
    # The accounts' MRR now, converted, is the ending figure: nothing counted twice.
    assert feb["ending_mrr_minor"] == 1000 + 2500 + 2200 + 700
    # GBP has no rate: reported apart, in pounds, never added to dollars.
    assert months["unconverted"] == [{"currency": "GBP", "mrr_minor": 500}]
    # A quarter compares its start with its end: January's start was nothing.
    (q1,) = quarter["periods"]
    assert q1["period_start"] == "2026-01-01" and q1["ending_mrr_minor"] == 6400
    assert q1["new_mrr_minor"] == 6400 and q1["grr"] is None
    owners = {p["group"]: p for p in by_owner["periods"]}
    assert owners["lee@example.com"]["grr"] == pytest.approx((4400 - 1100 - 1100) / 4400)
    assert owners["kim@example.com"]["nrr"] == pytest.approx(3500 / 3000)


STRIPE = StripeAccounts(mapping={"cus_renew": "renew-co"})
PAID = invoice(customer="cus_renew", currency="usd", amount_paid=120_000)


def _unix(day: date) -> int:
    return int(datetime(day.year, day.month, day.day, 12, tzinfo=UTC).timestamp())


def _stripe(event_type: str, obj: dict[str, Any], n: int, day: date) -> Event:
    body = stripe_event(event_type, obj, event_id=f"evt_{n}", created=_unix(day))
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    (item,) = map_stripe_event(read_stripe_event(body), STRIPE, None, at, IngestLimits())
    assert isinstance(item, Event), item
    return item


def _annual(period_end: date) -> dict[str, Any]:
    yearly = price(unit_amount=120_000, interval="year")
    return subscription(
        customer="cus_renew",
        items=[(yearly, 1)],
        start_date=_unix(date(2025, 3, 1)),
        current_period_end=_unix(period_end),
    )


async def test_renewals_list_the_months_annual_accounts_and_a_stripe_renewal_is_recorded(
    kafka: str, scoring_db: str, topics: dict[str, str], tmp_path: Path
) -> None:
    start, renewal = date(2025, 3, 1), date(2026, 3, 1)
    other = [
        billing(
            account_id=account,
            at=JAN,
            mrr_minor=900,
            currency="USD",
            term_months=term,
            renewal_date=due,
        )
        for account, term, due in (
            ("annual-march", 12, date(2026, 3, 20)),
            ("annual-april", 12, date(2026, 4, 2)),
            ("monthly-march", 1, date(2026, 3, 5)),
        )
    ]
    before = [_stripe("customer.subscription.created", _annual(renewal), 1, start)]
    rolled = [
        _stripe("customer.subscription.updated", _annual(date(2027, 3, 1)), 2, renewal),
        _stripe(
            "invoice.paid",
            invoice(customer="cus_renew", currency="usd", amount_paid=120_000),
            3,
            renewal,
        ),
    ]
    at = datetime(2026, 3, 1, 13, tzinfo=UTC)
    await _process(scoring_db, [(JAN, before + other)])
    settings = settings_for(kafka, scoring_db, topics, scoring_currency_rates_path=_rates(tmp_path))
    march = {"since": "2026-03-01", "until": "2026-03-01"}
    async with serve(create_app(settings, FakeClock())) as url:
        due = await _get(url, "/v1/renewals", {**march, "contracts_only": "true"})
        await _process(scoring_db, [(at, rolled)])
        after = await _get(url, "/v1/renewals", march)

    listed = [(r["account_id"], r["renewal_date"], r["outcome"]) for r in due["renewals"]]
    assert listed == [("renew-co", "2026-03-01", None), ("annual-march", "2026-03-20", None)]
    first = due["renewals"][0]
    assert (first["arr_minor"], first["currency"], first["term_months"]) == (120_000, "USD", 12)
    outcomes = {r["account_id"]: r["outcome"] for r in after["renewals"]}
    assert outcomes == {"renew-co": "renewed", "monthly-march": None, "annual-march": None}
    renewed = next(r for r in after["renewals"] if r["account_id"] == "renew-co")
    assert renewed["renewal_date"] == "2026-03-01" and renewed["arr_home_minor"] == 120_000


async def test_the_embedded_sqlite_database_gives_the_same_figures(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'scoring.db'}"
    await upgrade_database(database, MIGRATIONS)
    await _process(database, [(JAN, _month(JAN, 0)), (FEB, _month(FEB, 1))])
    rates = RatesFile(_rates(tmp_path), "USD").current()
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            months = await repository.movements(session, date(2026, 3, 1), quarterly=False)
            quarters = await repository.movements(session, date(2026, 4, 1), quarterly=True)
    finally:
        await engine.dispose()
    (feb,) = retention(months, rates, date(2026, 2, 1), [date(2026, 2, 1)]).periods
    assert (feb.starting, feb.new, feb.expansion, feb.contraction, feb.churn) == (
        7400,
        700,
        500,
        1100,
        1100,
    )
    (q1,) = retention(quarters, rates, date(2026, 1, 1), [date(2026, 1, 1)]).periods
    assert (q1.starting, q1.new, q1.ending) == (0, 6400, 6400)
