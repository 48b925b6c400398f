from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from services.ingest.app import create_app
from shared.events import Event
from tests.support.apps import ingest_settings
from tests.support.events import native_usage_json
from tests.support.kafka import consume
from tests.support.servers import TcpRelay, serve, wait_for

pytestmark = pytest.mark.kafka


@pytest.fixture
async def ingest(kafka: str, topics: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ingest_settings(kafka=kafka, topics=topics, ingest_max_body_bytes=4096))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        await wait_for(lambda: _ready(client), 30, "ingest to be ready")
        yield client


async def _ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


async def test_a_batch_lands_on_the_events_topic_keyed_by_account(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    batch = {"events": [native_usage_json(account_id="a1"), native_usage_json(account_id="a2")]}

    response = await ingest.post("/v1/events", json=batch)

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["accepted"] == 2
    records = await consume(kafka, topics["events_topic"], 2)
    events = {Event.from_bytes(r.value).event_id: r for r in records}
    assert set(events) == set(body["event_ids"])
    assert {r.key for r in records} == {b"a1", b"a2"}


async def test_invalid_input_is_refused_naming_the_field_and_nothing_is_stored(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    bad = native_usage_json()
    del bad["account_id"]

    refused = await ingest.post("/v1/events", json={"events": [native_usage_json(), bad]})
    accepted = await ingest.post("/v1/events", json=native_usage_json(account_id="after"))

    assert refused.status_code == 422
    assert refused.json()["details"] == [
        {"field": "events[1].account_id", "reason": "Field required"}
    ]
    assert accepted.status_code == 202, accepted.text
    (record,) = await consume(kafka, topics["events_topic"], 1)
    assert record.key == b"after"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b'{"account_id": ', "application/json", 400, "invalid_payload"),
        (b"x" * 5000, "application/json", 413, "body_too_large"),
        (orjson.dumps(native_usage_json()), "text/plain", 415, "unsupported_media_type"),
    ],
    ids=["malformed", "oversized", "wrong-type"],
)
async def test_bad_requests_get_a_clear_4xx(
    ingest: httpx.AsyncClient, content: bytes, content_type: str, status: int, error: str
) -> None:
    response = await ingest.post(
        "/v1/events", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]


async def test_without_a_broker_it_answers_503_then_recovers_by_itself(
    kafka: str, topics: dict[str, str]
) -> None:
    host, _, port = kafka.split(",")[0].rpartition(":")
    relay = TcpRelay(host, int(port))
    app = create_app(ingest_settings(kafka=f"127.0.0.1:{relay.port}", topics=topics))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        not_ready = await client.get("/readyz")
        refused = await client.post("/v1/events", json=native_usage_json())

        await relay.start()
        try:
            await wait_for(lambda: _ready(client), 30, "ingest to reconnect")
            accepted = await client.post("/v1/events", json=native_usage_json())
        finally:
            await relay.stop()

    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["kafka"] != "ok"
    assert refused.status_code == 503
    assert refused.headers["retry-after"] == "5"
    assert accepted.status_code == 202, accepted.text


async def test_operational_endpoints(ingest: httpx.AsyncClient) -> None:
    assert (await ingest.get("/healthz")).json() == {"status": "ok"}
    assert (await ingest.get("/readyz")).json() == {"ready": True, "checks": {"kafka": "ok"}}
    assert "vitals_ingest_events_accepted_total" in (await ingest.get("/metrics")).text
    spec = (await ingest.get("/openapi.json")).json()
    assert "EventIn" in spec["components"]["schemas"]
