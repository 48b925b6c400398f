"""Over HTTP, what Vitals cannot hold is refused per item with a clear reason and a dead
letter, and never costs the valid items of the same request (real Kafka and PostgreSQL)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from shared.dlq import DeadLetter
from shared.events import Event
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
async def ingest(
    kafka: str, topics: dict[str, str], database: str
) -> AsyncIterator[httpx.AsyncClient]:
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))
    async with ingest_client(settings) as client:
        yield client


def _nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


# Each item Vitals cannot hold, and the field its error must name.
UNHOLDABLE = {
    "event_id": native_usage_json(event_id="nul\x00id"),
    "account_id": native_usage_json(account_id="ac\x00me"),
    "occurred_at": native_usage_json(occurred_at="0001-01-01T00:00:00+14:00"),
    "billing.mrr_minor": native_usage_json(
        kind="billing", name="plan.changed", billing={"mrr_minor": 2**63, "currency": "USD"}
    ),
    "properties": native_usage_json(properties=_nested(33)),
    "name": native_usage_json(name="report\nexported"),
}


async def test_items_vitals_cannot_hold_are_refused_one_by_one_and_the_rest_stored(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    good = [native_usage_json(event_id=f"good-{i}") for i in range(20)]
    items = good[:10] + list(UNHOLDABLE.values()) + good[10:]

    response = await ingest.post("/v1/events", json={"events": items})

    assert response.status_code == 202, response.text
    body = response.json()
    assert (body["accepted"], body["rejected"]) == (20, len(UNHOLDABLE))
    for offset, (field, error) in enumerate(zip(UNHOLDABLE, body["errors"], strict=True)):
        assert error["index"] == 10 + offset
        assert error["reason"] == "invalid_event"
        assert [d["field"] for d in error["details"]] == [field], error
    stored = await consume(kafka, topics["events_topic"], 20)
    assert sorted(Event.from_bytes(r.value).event_id for r in stored) == sorted(
        e["event_id"] for e in good
    )
    letters = await consume(kafka, f"{topics['events_topic']}.dlq", len(UNHOLDABLE))
    assert {DeadLetter.from_bytes(r.value).reason for r in letters} == {"invalid_event"}


async def test_an_id_is_stored_as_unicode_nfc_without_surrounding_white_space(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    response = await ingest.post(
        "/v1/events", json=native_usage_json(account_id=" cafe\u0301 ", event_id="nfc")
    )

    assert response.status_code == 202, response.text
    (record,) = await consume(kafka, topics["events_topic"], 1)
    assert Event.from_bytes(record.value).account_id == "caf\u00e9"
    assert record.key == "caf\u00e9".encode()


@pytest.mark.parametrize("depth", [60, 254, 300, 1020])
async def test_a_body_nested_past_the_limit_is_refused_whole_with_a_dead_letter(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str], depth: int
) -> None:
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    body = b'{"events": [{"account_id": "acme", "properties": ' + deep + b"}]}"

    response = await ingest.post(
        "/v1/events", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_body"
    assert "nested deeper than" in response.json()["message"]
    (record,) = await consume(kafka, f"{topics['events_topic']}.dlq", 1)
    assert DeadLetter.from_bytes(record.value).original() == body


async def test_a_segment_user_id_vitals_cannot_hold_is_refused_not_retried_forever(
    ingest: httpx.AsyncClient, kafka: str, topics: dict[str, str]
) -> None:
    calls = [
        {"type": "identify", "userId": "u\x00", "messageId": "m1", "traits": {"role": "admin"}},
        {"type": "group", "userId": "v\x00", "groupId": "acme", "messageId": "m2"},
        {"type": "track", "userId": "u2", "event": "Exported", "messageId": "m3"}
        | {"context": {"groupId": "acme"}},
    ]

    response = await ingest.post("/v1/batch", json={"batch": calls})

    assert response.status_code == 200, response.text
    (record,) = await consume(kafka, topics["events_topic"], 1)
    assert Event.from_bytes(record.value).event_id == "m3"
    letters = await consume(kafka, f"{topics['events_topic']}.dlq", 2)
    reasons = {DeadLetter.from_bytes(r.value).reason for r in letters}
    assert reasons <= {"unknown_account", "invalid_event"}, reasons
