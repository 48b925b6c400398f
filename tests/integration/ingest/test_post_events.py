import gzip
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import orjson
import pytest

from services.ingest.app import create_app
from shared.dlq import DeadLetter
from shared.events import Event
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume
from tests.support.own_broker import OwnBroker
from tests.support.servers import TcpRelay, is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def ingest_db(database: str) -> str:
    return await migrated(database)


@pytest.fixture
async def ingest(
    kafka: str, topics: dict[str, str], ingest_db: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=ingest_db,
        ingest_max_body_bytes=4096,
        ingest_max_event_bytes=1024,
    )
    async with ingest_client(settings) as client:
        yield client


async def _dead_letters(kafka: str, topics: dict[str, str], count: int) -> list[DeadLetter]:
    records = await consume(kafka, f"{topics['events_topic']}.dlq", count)
    return [DeadLetter.from_bytes(r.value) for r in records]


async def test_a_batch_lands_on_the_events_topic_keyed_by_account(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    batch = {"events": [native_usage_json(account_id="a1"), native_usage_json(account_id="a2")]}

    response = await ingest.post("/v1/events", json=batch)

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"], body["errors"]) == (2, 0, [])
    records = await consume(kafka, topics["events_topic"], 2)
    events = {Event.from_bytes(r.value).event_id: r for r in records}
    assert set(events) == set(body["event_ids"])
    assert {r.key for r in records} == {b"a1", b"a2"}


async def test_valid_items_are_accepted_and_invalid_ones_dead_lettered_by_index(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    bad = native_usage_json(event_id="bad-1")
    del bad["account_id"]
    oversized = native_usage_json(properties={"blob": "x" * 1500})

    response = await ingest.post(
        "/v1/events", json={"events": [native_usage_json(account_id="ok"), bad, oversized]}
    )

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (1, 2)
    assert [(e["index"], e["reason"]) for e in body["errors"]] == [
        (1, "invalid_event"),
        (2, "event_too_large"),
    ]
    assert body["errors"][0]["details"] == [{"field": "account_id", "reason": "Field required"}]
    (record,) = await consume(kafka, topics["events_topic"], 1)
    assert record.key == b"ok"
    letters = sorted(await _dead_letters(kafka, topics, 2), key=lambda d: d.reason)
    assert [d.reason for d in letters] == ["event_too_large", "invalid_event"]
    invalid = letters[1]
    assert orjson.loads(invalid.original()) == bad
    assert invalid.source == "http:/v1/events"
    assert invalid.event_id == "bad-1"
    assert invalid.processor.startswith("ingest@")


async def test_a_single_invalid_event_is_refused_with_422_and_dead_lettered(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    response = await ingest.post("/v1/events", json=native_usage_json(kind="telemetry"))

    assert response.status_code == 422
    assert response.json()["error"] == "invalid_event"
    assert response.json()["details"][0]["field"] == "kind"
    (letter,) = await _dead_letters(kafka, topics, 1)
    assert letter.reason == "invalid_event"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "error"),
    [
        (b'{"account_id": ', "application/json", 400, "malformed_json"),
        (b"x" * 5000, "application/json", 413, "body_too_large"),
        (orjson.dumps(native_usage_json()), "text/plain", 415, "unsupported_media_type"),
    ],
    ids=["malformed", "oversized", "wrong-type"],
)
async def test_bad_requests_get_a_clear_4xx_and_a_dead_letter(
    ingest: httpx.AsyncClient,
    kafka: str,
    topics: dict[str, str],
    content: bytes,
    content_type: str,
    status: int,
    error: str,
) -> None:
    response = await ingest.post(
        "/v1/events", content=content, headers={"content-type": content_type}
    )

    assert response.status_code == status
    assert response.json()["error"] == error
    assert response.json()["message"]
    (letter,) = await _dead_letters(kafka, topics, 1)
    assert letter.reason == error
    assert letter.original_size == len(content) or error == "unsupported_media_type"


async def test_a_gzip_body_is_accepted_and_its_decompressed_size_limited(
    ingest: httpx.AsyncClient,
) -> None:
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    small = gzip.compress(orjson.dumps(native_usage_json()))
    bomb = gzip.compress(b" " * 100_000)

    accepted = await ingest.post("/v1/events", content=small, headers=headers)
    refused = await ingest.post("/v1/events", content=bomb, headers=headers)

    assert accepted.status_code == 202, accepted.text
    assert refused.status_code == 413
    assert refused.json()["error"] == "body_too_large"


async def test_without_a_broker_it_answers_503_then_recovers_by_itself(
    kafka: str, topics: dict[str, str], ingest_db: str
) -> None:
    host, _, port = kafka.split(",")[0].rpartition(":")
    relay = TcpRelay(host, int(port))
    settings = ingest_test_settings(
        kafka=f"127.0.0.1:{relay.port}", topics=topics, database=ingest_db
    )
    app = create_app(settings)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:
        not_ready = await client.get("/readyz")
        refused = await client.post("/v1/events", json=native_usage_json())

        await relay.start()
        try:
            await wait_for(lambda: is_ready(client), 30, "ingest to reconnect")
            accepted = await client.post("/v1/events", json=native_usage_json())
        finally:
            await relay.stop()

    assert not_ready.status_code == 503
    assert not_ready.json()["checks"]["kafka"] != "ok"
    assert refused.status_code == 503
    assert refused.json()["error"] == "broker_unavailable"
    assert refused.headers["retry-after"] == "5"
    assert accepted.status_code == 202, accepted.text


async def test_after_a_failed_publish_it_turns_ready_again_without_another_request(
    topics: dict[str, str], ingest_db: str, tmp_path: Path
) -> None:
    broker = OwnBroker(tmp_path)
    await broker.start()
    settings = ingest_test_settings(
        kafka=broker.bootstrap, topics=topics, database=ingest_db, ingest_publish_timeout_s=2.0
    )
    try:
        async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
            await wait_for(lambda: is_ready(client), 60, "ingest to connect")
            await broker.stop()
            refused = await client.post("/v1/events", json=native_usage_json())
            not_ready = (await client.get("/readyz")).json()["checks"]
            await broker.start()
            # A balancer sends no traffic to a replica that is not ready: it must find
            # the broker again by itself.
            await wait_for(lambda: is_ready(client), 60, "ingest to be ready again")
            accepted = await client.post("/v1/events", json=native_usage_json())
    finally:
        await broker.stop()

    assert refused.status_code == 503
    assert not_ready["publishing"] == "last publish failed: TimeoutError", not_ready
    assert accepted.status_code == 202, accepted.text


async def test_operational_endpoints(ingest: httpx.AsyncClient) -> None:
    await ingest.post("/v1/events", json=native_usage_json())

    assert (await ingest.get("/healthz")).json() == {"status": "ok"}
    assert (await ingest.get("/readyz")).json()["ready"] is True
    metrics = (await ingest.get("/metrics")).text
    assert 'vitals_ingest_events_accepted_total{source="native"}' in metrics
    assert (
        'vitals_http_request_duration_seconds_count{code="202",method="POST",route="/v1/events"}'
        in metrics
    )
    assert 'vitals_ingest_last_accepted_timestamp_seconds{source="native"}' in metrics
    assert "_created" not in metrics  # no extra gauge family per counter and histogram
    spec = (await ingest.get("/openapi.json")).json()
    body = spec["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
    assert {"$ref": "#/components/schemas/EventBatchIn"} in body["schema"]["oneOf"]
    assert "ItemError" in spec["components"]["schemas"]
