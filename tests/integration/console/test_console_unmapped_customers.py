"""The console's page of Stripe customers with no account, over a real ingest on Kafka and
PostgreSQL: a signed unmapped event posted to ingest's webhook is listed with its
customer's facts; without VITALS_CONSOLE_INGEST_URL, or with ingest not answering, the
page says so. Scoring is the stand-in of ``conftest`` (sign-in only asks it)."""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from services.console.app import create_app
from services.console.routes.stripe import NOT_SET_UP
from services.console.settings import ConsoleSettings
from tests.integration.console.conftest import Apis, RunningConsole
from tests.support.ingest_apps import (
    ingest_client,
    ingest_test_settings,
    invoice,
    migrated,
    signature_header,
    stripe_event,
    subscription,
)
from tests.support.servers import serve

SECRET = "whsec_console"
PAGE = "/stripe/unmapped-customers"


@contextlib.asynccontextmanager
async def _console(ingest_url: str | None) -> AsyncIterator[RunningConsole]:
    apis = Apis()
    async with serve(apis.app()) as scoring_url:
        settings = ConsoleSettings(
            environment="test",
            console_scoring_url=scoring_url,
            console_alerts_url=scoring_url,
            console_ingest_url=ingest_url,
        )
        async with serve(create_app(settings)) as url:
            yield RunningConsole(url, apis)


async def _post(ingest: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "stripe-signature": signature_header(body, SECRET),
    }
    return await ingest.post("/v1/stripe/webhook", content=body, headers=headers)


@pytest.mark.kafka
@pytest.mark.postgres
async def test_an_unmapped_customer_posted_to_ingest_is_listed(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    now = int(time.time()) - 120
    failed = stripe_event(
        "invoice.payment_failed",
        invoice(customer="cus_new", customer_email="ap@new.example", customer_name="New Co"),
        event_id="evt_failed",
        created=now - 3600,
    )
    renewed = stripe_event(
        "customer.subscription.updated",
        subscription(customer="cus_new"),
        event_id="evt_renewed",
        created=now,
    )
    mapped = stripe_event(
        "customer.subscription.created",
        subscription(customer="cus_globex"),
        event_id="evt_globex",
        created=now,
    )
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets=SECRET,
        ingest_stripe_customer_accounts={"cus_globex": "globex"},
    )
    async with (
        ingest_client(settings) as ingest,
        _console(str(ingest.base_url)) as console,
        console.signed_in() as client,
    ):
        empty = await client.get(PAGE)
        posted = [await _post(ingest, body) for body in (failed, renewed, mapped)]
        listed = await client.get(PAGE)
        accounts = await client.get("/accounts")

    assert empty.status_code == 200, empty.text
    assert "None: every Stripe customer that sent an event has an account." in empty.text
    assert [p.json()["held"] for p in posted] == [1, 1, 0]
    assert listed.status_code == 200, listed.text
    page = html.unescape(listed.text)
    row = page[page.index('<tr data-customer="cus_new">') :]
    row = row[: row.index("</tr>")]
    cells = [c.split(">", 1)[1] for c in row.split("<td")[1:]]
    cells = [c.removeprefix("<code>").split("<")[0] for c in cells]
    assert cells[0] == "cus_new"
    assert cells[1:3] == ["ap@new.example", "New Co"]
    assert cells[3] < cells[4]  # first seen an hour before last seen (YYYY-MM-DD HH:MM UTC)
    assert cells[5:] == ["2", "600.00 USD", "customer.subscription.updated"]
    assert "cus_globex" not in page
    assert "VITALS_INGEST_STRIPE_CUSTOMER_ACCOUNTS" in page and "vitals_account_id" in page
    assert 'href="/stripe/unmapped-customers"' in accounts.text  # in every page's nav


async def test_without_the_setting_the_page_says_how_to_set_it() -> None:
    async with _console(None) as console, console.signed_in() as client:
        answer = await client.get(PAGE)

    assert answer.status_code == 503
    assert NOT_SET_UP in html.unescape(answer.text)


async def test_with_ingest_down_the_page_says_it_does_not_answer() -> None:
    async with serve(Apis().app()) as gone:
        pass  # a port nothing listens on any more
    async with _console(gone) as console, console.signed_in() as client:
        answer = await client.get(PAGE)

    assert answer.status_code == 503
    text = html.unescape(answer.text)
    assert "Cannot list them now: the ingest service did not answer" in text
    assert 'data-testid="unmapped-customers"' not in text
