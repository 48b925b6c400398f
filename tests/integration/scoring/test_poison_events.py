"""Records on the events topic that break the event contract (an older producer, a
direct write) are dead-lettered with their reason; the events around them count once."""

from __future__ import annotations

import httpx
import orjson
import pytest

from services.scoring.app import create_app
from shared.dlq import DeadLetter
from tests.support.clock import FakeClock
from tests.support.kafka import consume, produce
from tests.support.scoring_builders import usage
from tests.support.scoring_service import applied, records, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _raw(**fields: object) -> bytes:
    event: dict[str, object] = {
        "event_id": "poison",
        "account_id": "acme",
        "kind": "usage",
        "name": "report.exported",
        "occurred_at": "2026-11-22T11:00:00Z",
        "received_at": "2026-11-22T11:00:00Z",
        "schema_version": 1,
    }
    event.update(fields)
    return orjson.dumps(event)


def _nested(depth: int) -> bytes:
    """An event whose properties nest ``depth`` levels (past what JSON encoders write)."""
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    return _raw(properties="deep").replace(b'"deep"', deep)


# Each poison record, and the field its dead letter must name.
POISON = {
    "account_id": _raw(account_id="ac\x00me"),
    "occurred_at": _raw(occurred_at="0001-01-01T00:00:00+14:00"),
    "billing.mrr_minor": _raw(kind="billing", billing={"mrr_minor": 2**63, "currency": "USD"}),
    "properties": _nested(40),
    "(record)": _nested(300),  # past the JSON parser's own depth limit
    "event_id": _raw(event_id="ev\x00nt"),
    "received_at": _raw(received_at="1999-12-31T23:59:59Z"),
}


async def test_events_that_break_the_contract_are_dead_lettered_with_their_reason(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = settings_for(kafka, scoring_db, topics)
    before, after = usage(event_id="before"), usage(event_id="after")
    poison = [(b"acme", raw) for raw in POISON.values()]
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records([before]) + poison + records([after]))
        account = await wait_for(applied(api, "acme", 2), 30, "the good events around the poison")
        letters = [
            DeadLetter.from_bytes(r.value or b"")
            for r in await consume(kafka, settings.dlq_topic, len(POISON))
        ]
        ready = await api.get("/readyz")

    assert account["events_applied"] == 2
    assert {letter.reason for letter in letters} == {"unreadable_event"}
    for field, letter in zip(POISON, sorted(letters, key=lambda x: x.offset or 0), strict=True):
        assert f"{field}:" in letter.message, (field, letter.message)
        assert letter.original() == POISON[field]
    assert ready.status_code == 200, ready.json()
