"""Records on the scores topic that alerts cannot use are dead-lettered with their
reason, and the score changes around them are handled once (real Kafka, PostgreSQL
and a local webhook receiver)."""

from __future__ import annotations

import httpx
import orjson
import pytest

from services.alerts.app import MIGRATIONS, create_app
from shared.dlq import DeadLetter
from tests.support.apps import alerts_settings
from tests.support.clock import FakeClock
from tests.support.events import score_change
from tests.support.infra import migrated_to
from tests.support.kafka import consume, produce
from tests.support.servers import WebhookReceiver, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def _change(**fields: object) -> bytes:
    document = orjson.loads(score_change(account_id="poison", health_score=10).to_bytes())
    document.update(fields)
    return orjson.dumps(document)


# Each unusable record, and the field its dead letter must name.
POISON = {
    "account_id": _change(account_id="po\x00ison"),
    "sequence": _change(sequence=2**63),
    "computed_at": _change(computed_at="0001-01-01T00:00:00+14:00"),
    "(record)": b"not json at all",
}


async def test_unusable_score_messages_are_dead_lettered_and_the_rest_alert_once(
    kafka: str, database: str, topics: dict[str, str]
) -> None:
    await migrated_to(database, MIGRATIONS)
    dlq = f"{topics['scores_topic']}.dlq"
    low_a = score_change(account_id="a", health_score=10)
    low_b = score_change(account_id="b", health_score=10)
    receiver = WebhookReceiver()
    async with serve(receiver.app()) as hook_url:
        settings = alerts_settings(
            kafka=kafka,
            database=database,
            topics=topics,
            dlq_topic=dlq,
            alerts_webhook_url=f"{hook_url}/hook",
        )
        async with (
            serve(create_app(settings, FakeClock())) as url,
            httpx.AsyncClient(base_url=url) as api,
        ):
            records = [(b"a", low_a.to_bytes())]
            records += [(b"poison", raw) for raw in POISON.values()]
            records += [(b"b", low_b.to_bytes())]
            await produce(kafka, topics["scores_topic"], records)

            async def both_delivered() -> bool:
                return len(receiver.received) == 2

            await wait_for(both_delivered, 30, "the alerts of the good score changes")
            letters = [DeadLetter.from_bytes(r.value) for r in await consume(kafka, dlq, 4)]
            ready = await api.get("/readyz")

    assert sorted(d["account_id"] for d in receiver.received) == ["a", "b"]
    assert {letter.reason for letter in letters} == {"unreadable_score_change"}
    by_offset = sorted(letters, key=lambda letter: letter.offset or 0)
    for field, letter in zip(POISON, by_offset, strict=True):
        assert f"{field}:" in letter.message, (field, letter.message)
        assert letter.original() == POISON[field]
        assert letter.processor.startswith("alerts@")
    assert ready.status_code == 200, ready.json()
