"""Stripe webhooks signed by Stripe's own library, against a running ingest on real Kafka."""

import time

import httpx
import pytest

from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter
from shared.events import Event, PaymentOutcome, SubscriptionStatus
from tests.support.ingest_apps import (
    CREATED,
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

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

OLD_SECRET, NEW_SECRET = "whsec_old", "whsec_new"
PATH = "/v1/stripe/webhook"


@pytest.fixture
async def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    return ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets=f"{OLD_SECRET}, {NEW_SECRET}",
        ingest_stripe_customer_accounts={"cus_globex": "globex"},
    )


async def _post(
    client: httpx.AsyncClient, body: bytes, secret: str = NEW_SECRET, **header: str
) -> httpx.Response:
    headers = {
        "content-type": "application/json; charset=utf-8",
        "stripe-signature": header.get("signature") or signature_header(body, secret),
    }
    return await client.post(PATH, content=body, headers=headers)


async def test_signed_events_land_as_billing_events_and_stripe_retries_are_stored_once(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    created = stripe_event(
        "customer.subscription.created",
        subscription(customer="cus_globex"),
        event_id="evt_sub",
    )
    failed = stripe_event("invoice.payment_failed", invoice(customer="cus_new"), event_id="evt_in")
    async with ingest_client(settings) as client:
        first = await _post(client, created)
        retried = await _post(client, created, OLD_SECRET)
        unknown_customer = await _post(client, failed)

    assert [r.status_code for r in (first, retried, unknown_customer)] == [200, 200, 200]
    assert (first.json()["accepted"], retried.json()["duplicates"]) == (1, 1)
    # A customer with no account is no account: its event is kept aside, not published.
    assert (unknown_customer.json()["accepted"], unknown_customer.json()["held"]) == (0, 1)
    assert await topic_size(kafka, topics["events_topic"]) == 1
    (subscribed,) = [
        Event.from_bytes(r.value) for r in await consume(kafka, topics["events_topic"], 1)
    ]
    assert subscribed.event_id == "evt_sub"
    assert (subscribed.account_id, subscribed.name) == ("globex", "customer.subscription.created")
    assert subscribed.billing is not None
    assert subscribed.billing.subscription_status is SubscriptionStatus.active
    assert (subscribed.billing.mrr_minor, subscribed.billing.seats) == (60_000, 12)


async def test_the_account_in_customer_metadata_is_remembered_across_restarts_newest_first(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    def customer(account: str, created: int) -> bytes:
        obj = {"id": "cus_meta", "object": "customer", "metadata": {"vitals_account_id": account}}
        return stripe_event("customer.updated", obj, event_id=f"evt_c{created}", created=created)

    paid = stripe_event(
        "invoice.paid", invoice(customer="cus_meta", amount_paid=10), event_id="evt_p"
    )
    async with ingest_client(settings) as client:
        newer = await _post(client, customer("acme", CREATED + 60))
        older = await _post(client, customer("stale", CREATED))
    async with ingest_client(settings) as client:
        billed = await _post(client, paid)

    assert [r.status_code for r in (newer, older, billed)] == [200, 200, 200]
    assert newer.json()["accepted"] == 0
    event = Event.from_bytes((await consume(kafka, topics["events_topic"], 1))[0].value)
    assert (event.event_id, event.account_id) == ("evt_p", "acme")
    assert event.properties["account_from"] == "customer_metadata"


async def test_bad_signatures_are_refused_with_400_and_not_dead_lettered(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    body = stripe_event("invoice.paid", invoice(amount_paid=100))
    stale = signature_header(body, NEW_SECRET, int(time.time()) - 600)
    unmapped = stripe_event("payment_intent.created", {"id": "pi_1"}, event_id="evt_unmapped")
    async with ingest_client(settings) as client:
        refused_before = await _refused_count(client, "invalid_signature")
        unknown_secret = await _post(client, body, "whsec_attacker")
        too_old = await _post(client, body, signature=stale)
        unsigned = await client.post(
            PATH, content=body, headers={"content-type": "application/json"}
        )
        kept = await _post(client, unmapped)
        refused_after = await _refused_count(client, "invalid_signature")
        wrong_type = await client.post(PATH, content=body, headers={"content-type": "text/plain"})
        huge = await client.post(
            PATH, content=b"x" * 600_000, headers={"content-type": "application/json"}
        )

    for refused in (unknown_secret, too_old, unsigned):
        assert refused.status_code == 400, refused.text
        assert refused.json()["error"] == "invalid_signature"
    assert "tolerance" in too_old.json()["message"]
    assert refused_after - refused_before == 3
    assert [wrong_type.status_code, huge.status_code] == [415, 413]
    # A signed event that cannot be mapped is answered 200 (a retry cannot fix it) and kept.
    assert kept.status_code == 200
    assert kept.json()["errors"][0]["reason"] == "unsupported_type"
    # Only the signed event is a dead letter: unsigned posts cannot write there.
    dlq = f"{topics['events_topic']}.dlq"
    assert await topic_size(kafka, dlq) == 1
    letters = await consume(kafka, dlq, 1)
    assert [DeadLetter.from_bytes(r.value).event_id for r in letters] == ["evt_unmapped"]


async def test_without_a_configured_secret_stripe_is_told_to_retry_later(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))
    body = stripe_event("invoice.paid", invoice(amount_paid=100))
    async with ingest_client(settings) as client:
        response = await _post(client, body)

    assert response.status_code == 503
    assert response.json()["error"] == "stripe_not_configured"
    assert response.headers["retry-after"] == "300"


async def _refused_count(client: httpx.AsyncClient, reason: str) -> float:
    metrics = (await client.get("/metrics")).text
    line = f'vitals_ingest_requests_rejected_total{{reason="{reason}"}} '
    values = [float(m.removeprefix(line)) for m in metrics.splitlines() if m.startswith(line)]
    return values[0] if values else 0.0


async def test_an_invoice_naming_only_its_customer_reaches_the_account_its_subscription_named(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    subscribed = stripe_event(
        "customer.subscription.created",
        subscription(customer="cus_sub", metadata={"vitals_account_id": "initech"}),
        event_id="evt_sub",
    )
    failed = stripe_event("invoice.payment_failed", invoice(customer="cus_sub"), event_id="evt_in")
    async with ingest_client(settings) as client:
        answers = [await _post(client, subscribed)]
    async with ingest_client(settings) as client:  # the link outlives a restart
        answers.append(await _post(client, failed))

    assert [a.status_code for a in answers] == [200, 200]
    records = await consume(kafka, topics["events_topic"], 2)
    events = {e.event_id: e for e in (Event.from_bytes(r.value) for r in records)}
    assert events["evt_sub"].account_id == "initech"
    assert events["evt_in"].account_id == "initech"
    assert events["evt_in"].properties["account_from"] == "customer_metadata"


async def test_a_failed_payment_without_a_currency_still_lands_and_its_amount_is_dead_lettered(
    settings: IngestSettings, kafka: str, topics: dict[str, str]
) -> None:
    body = stripe_event(
        "invoice.payment_failed", invoice(customer="cus_globex", currency=None), event_id="evt_nc"
    )
    async with ingest_client(settings) as client:
        answer = await _post(client, body)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (1, 1)
    (record,) = await consume(kafka, topics["events_topic"], 1)
    event = Event.from_bytes(record.value)
    assert event.account_id == "globex"
    assert event.billing is not None and event.billing.payment is PaymentOutcome.failed
    (letter,) = await consume(kafka, f"{topics['events_topic']}.dlq", 1)
    dead = DeadLetter.from_bytes(letter.value)
    assert (dead.reason, dead.event_id, dead.account_id) == ("invalid_event", "evt_nc", "globex")
    assert "amount_minor 12000" in dead.message


YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z: no UTC date holds it


@pytest.mark.parametrize(
    ("event_type", "obj", "created", "field"),
    [
        ("customer.subscription.updated", subscription(), YEAR_10000, "created"),
        (
            "customer.subscription.updated",
            subscription(current_period_end=YEAR_10000),
            CREATED,
            "current_period_end",
        ),
        (
            "customer.subscription.created",
            subscription(start_date=YEAR_10000),
            CREATED,
            "start_date",
        ),
        ("invoice.payment_failed", invoice(due_date=YEAR_10000), CREATED, "due_date"),
        ("customer.updated", {"id": "cus_1", "metadata": {}}, YEAR_10000, "created"),
    ],
)
async def test_a_time_no_date_holds_is_refused_for_its_event_and_dead_lettered_never_a_500(
    settings: IngestSettings,
    kafka: str,
    topics: dict[str, str],
    event_type: str,
    obj: dict[str, object],
    created: int,
    field: str,
) -> None:
    body = stripe_event(event_type, obj, event_id="evt_far", created=created)
    async with ingest_client(settings) as client:
        answer = await _post(client, body)

    assert answer.status_code == 200, answer.text
    assert (answer.json()["accepted"], answer.json()["rejected"]) == (0, 1)
    (letter,) = await consume(kafka, f"{topics['events_topic']}.dlq", 1)
    dead = DeadLetter.from_bytes(letter.value)
    assert (dead.reason, dead.event_id) == ("invalid_event", "evt_far")
    assert f"{field} {YEAR_10000} is outside the range of dates" in dead.message
    assert dead.original() == body
