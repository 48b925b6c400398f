"""With no broker, every intake route answers 503 with Retry-After, in its own shape."""

import httpx
import orjson
import pytest

from services.ingest.app import create_app
from tests.support.events import native_usage_json
from tests.support.ingest_apps import (
    ingest_test_settings,
    invoice,
    migrated,
    signature_header,
    stripe_event,
)
from tests.support.servers import free_port, serve

pytestmark = [pytest.mark.postgres]

SECRET = "whsec_down"


async def test_every_route_answers_503_with_retry_after_when_the_broker_is_down(
    topics: dict[str, str], database: str
) -> None:
    # A closed local port stands for the broker; the shared broker is never touched.
    settings = ingest_test_settings(
        kafka=f"127.0.0.1:{free_port()}",
        topics=topics,
        database=await migrated(database),
        ingest_stripe_webhook_secrets=SECRET,
    )
    cloud_event = {
        "specversion": "1.0",
        "id": "1",
        "source": "//app",
        "type": "report.exported",
        "data": {"account_id": "acme"},
    }
    # An invoice that names its account: one for a customer without an account is kept
    # aside in the database (answered "held"), which needs no broker.
    paid = invoice(amount_paid=100, metadata={"vitals_account_id": "acme"})
    stripe_body = stripe_event("invoice.paid", paid)
    call = {"userId": "u1", "event": "Seen", "context": {"groupId": "acme"}}
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        native = await client.post("/v1/events", json=native_usage_json(event_id="down-1"))
        cloud = await client.post(
            "/v1/events",
            content=orjson.dumps(cloud_event),
            headers={"content-type": "application/cloudevents+json"},
        )
        segment = await client.post("/v1/batch", json={"batch": [call]})
        stripe = await client.post(
            "/v1/stripe/webhook",
            content=stripe_body,
            headers={
                "content-type": "application/json",
                "stripe-signature": signature_header(stripe_body, SECRET),
            },
        )

    for response in (native, cloud, segment, stripe):
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"] == "5"
    for problem in (native, cloud, stripe):
        assert problem.json()["error"] == "broker_unavailable"
    assert segment.json() == {
        "success": False,
        "code": "broker_unavailable",
        "message": segment.json()["message"],
    }
