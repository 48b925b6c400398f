"""A Stripe customer no account is known for is not an account: its billing events are
kept aside in ingest's database and listed, never scored as an account of its own, and
published as its account's once an event tells that account. Real Kafka, PostgreSQL,
ingest and scoring."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from services.scoring.app import create_app as create_scoring_app
from shared.auth import Scope
from shared.events import Event
from tests.support.auth import make_keys_file
from tests.support.ingest_apps import (
    ingest_client,
    ingest_test_settings,
    invoice,
    migrated,
    signature_header,
    stripe_event,
    subscription,
    topic_size,
)
from tests.support.kafka import consume
from tests.support.scoring_service import applied, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

SECRET = "whsec_unmapped"
WEBHOOK = "/v1/stripe/webhook"
UNMAPPED = "/v1/stripe/unmapped-customers"


async def _post(client: httpx.AsyncClient, body: bytes) -> httpx.Response:
    headers = {
        "content-type": "application/json",
        "stripe-signature": signature_header(body, SECRET),
    }
    return await client.post(WEBHOOK, content=body, headers=headers)


async def test_an_unmapped_customer_is_listed_never_scored_and_released_once_mapped(
    kafka: str, topics: dict[str, str], scoring_db: str, tmp_path: Path
) -> None:
    keys_file, keys = make_keys_file(tmp_path, {"ops": [Scope.read, Scope.ingest]})
    reader = {"authorization": f"Bearer {keys['ops']}"}
    now = int(time.time()) - 120
    failed = stripe_event(
        "invoice.payment_failed",
        invoice(customer="cus_new", customer_email="ap@new.example", customer_name="New Co"),
        event_id="evt_failed",
        created=now,
    )
    renewed = stripe_event(
        "customer.subscription.updated",
        subscription(customer="cus_new"),
        event_id="evt_renewed",
        created=now + 10,
    )
    mapped = stripe_event(
        "customer.subscription.created",
        subscription(customer="cus_globex"),
        event_id="evt_globex",
        created=now,
    )
    told = stripe_event(
        "customer.updated",
        {"id": "cus_new", "object": "customer", "metadata": {"vitals_account_id": "initech"}},
        event_id="evt_told",
        created=now + 20,
    )
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(scoring_db),
        ingest_stripe_webhook_secrets=SECRET,
        ingest_stripe_customer_accounts={"cus_globex": "globex"},
        api_keys_file=keys_file,
    )
    scoring_app = create_scoring_app(settings_for(kafka, scoring_db, topics))
    async with (
        ingest_client(settings) as ingest,
        serve(scoring_app) as scoring_url,
        httpx.AsyncClient(base_url=scoring_url) as scoring,
    ):
        kept = [await _post(ingest, body) for body in (failed, renewed, failed)]
        globex = await _post(ingest, mapped)
        await wait_for(applied(scoring, "globex", 1), 60, "globex's event scored")
        unauthenticated = await ingest.get(UNMAPPED)
        listed = (await ingest.get(UNMAPPED, headers=reader)).json()["customers"]
        accounts = (await scoring.get("/v1/accounts")).json()["accounts"]
        published_while_unmapped = await topic_size(kafka, topics["events_topic"])

        released = await _post(ingest, told)
        initech = await wait_for(applied(scoring, "initech", 2), 60, "initech's events scored")
        after = (await ingest.get(UNMAPPED, headers=reader)).json()["customers"]
        retried = await _post(ingest, failed)

    assert [r.json()["held"] for r in kept] == [1, 1, 1]  # Stripe's retry is kept once
    assert globex.json()["accepted"] == 1
    assert unauthenticated.status_code == 401
    (customer,) = listed
    assert customer["customer_id"] == "cus_new"
    assert (customer["email"], customer["name"]) == ("ap@new.example", "New Co")
    assert customer["event_count"] == 2
    assert customer["first_seen"] < customer["last_seen"]
    assert (customer["mrr_minor"], customer["currency"]) == (60_000, "USD")
    assert customer["last_event"]["event_id"] == "evt_renewed"
    assert [a["account_id"] for a in accounts] == ["globex"]
    assert published_while_unmapped == 1

    assert released.status_code == 200
    assert initech["events_applied"] == 2
    assert after == []
    assert retried.json()["duplicates"] == 1  # published once, as initech's
    records = await consume(kafka, topics["events_topic"], 3)
    events = {e.event_id: e for e in (Event.from_bytes(r.value) for r in records)}
    assert {e.account_id for e in events.values()} == {"globex", "initech"}
    assert events["evt_failed"].account_id == "initech"
    assert events["evt_failed"].properties["account_from"] == "unmapped_customer"
    assert all(r.key != b"cus_new" for r in records)
