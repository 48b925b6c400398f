"""One record alerts cannot publish never stops the others: an oversized score change is
dead-lettered on arrival, an outbox row too large for the producer or for its topic is
dead-lettered by the relay (a topic limit lowered while running included), and the
backlog is watched on /metrics and /readyz (real Kafka, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import MessageSizeTooLargeError
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.models import AccountCursor, AlertEventRow
from shared.db import create_engine, session_factory
from shared.dlq import DeadLetter
from shared.scores import Risk
from tests.integration.alerts.conftest import AlertsStack, StackFactory
from tests.support.alerts_messages import enriched_change, facts
from tests.support.kafka import consume
from tests.support.servers import is_ready, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

TWO_MB = 2 * 1024 * 1024
BIG_TOPIC_BYTES = 4 * 1024 * 1024
PROBE = b"probe"  # the key of what a test sends to see whether a topic's limit holds
SMALL_TOPIC_BYTES = 4096  # under an event quoting twenty 400-character risk reasons
WIDE_REASONS = [f"{i:02d}" + "r" * 398 for i in range(20)]  # valid: 50 of 500 may be
PENDING = 'vitals_publisher_pending_rows{outbox="alert_events"}'


def _dlq(topics: dict[str, str]) -> str:
    return f"{topics['scores_topic']}.dlq"


async def _topic_for_big_records(kafka: str, name: str) -> None:
    await _create_topic(kafka, name, BIG_TOPIC_BYTES)


async def _create_topic(kafka: str, name: str, max_message_bytes: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        config = {"max.message.bytes": str(max_message_bytes)}
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=config)])
    finally:
        await admin.close()


async def _lower_limit(kafka: str, name: str, max_message_bytes: int) -> None:
    """Lower the topic's limit and return once the broker enforces it (a change of
    configuration reaches the log a moment after it is acknowledged)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        config = {"max.message.bytes": str(max_message_bytes)}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, name, config)])
    finally:
        await admin.close()
    probe = b"p" * (2 * max_message_bytes)
    await wait_for(lambda: _refused(kafka, name, probe), 30, f"{name} to refuse {len(probe)} B")


async def _refused(kafka: str, topic: str, value: bytes) -> bool:
    producer = AIOKafkaProducer(bootstrap_servers=kafka)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=PROBE)
    except MessageSizeTooLargeError:
        return True
    finally:
        await producer.stop()
    return False


async def _produce_big(kafka: str, topic: str, key: bytes, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, max_request_size=BIG_TOPIC_BYTES)
    await producer.start()
    try:
        await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


def _high_risk(account_id: str, stack: AlertsStack, *reasons: str) -> bytes:
    change = enriched_change(
        account_id=account_id,
        computed_at=stack.clock.now,
        account=facts(last_usage_at=stack.clock.now),
        risk=Risk.high,
        previous_risk=Risk.low,
        risk_reasons=["usage halved"],
    )
    document = orjson.loads(change.to_bytes())
    document["risk_reasons"] = list(reasons)
    return orjson.dumps(document)


async def _metric(stack: AlertsStack, line: str) -> float | None:
    exposition = (await stack.api.get("/metrics")).text
    for row in exposition.splitlines():
        if row.startswith(line + " "):
            return float(row.removeprefix(line + " "))
    return None


async def test_a_two_megabyte_risk_reason_is_dead_lettered_and_the_next_alert_still_goes_out(
    alerts_stack: StackFactory, kafka: str, topics: dict[str, str]
) -> None:
    await _topic_for_big_records(kafka, topics["scores_topic"])
    async with alerts_stack(dlq_topic=_dlq(topics)) as stack:
        big = _high_risk("big", stack, "x" * TWO_MB)
        await _produce_big(kafka, topics["scores_topic"], b"big", big)
        normal = _high_risk("normal", stack, "usage halved")
        await _produce_big(kafka, topics["scores_topic"], b"normal", normal)

        alerts_topic = f"{topics['scores_topic']}.alerts"
        (published,) = await consume(kafka, alerts_topic, 1, timeout_s=10)
        ready = await stack.api.get("/readyz")
        pending = await wait_for(lambda: _pending_at_most(stack, 0), 30, "the backlog gauge")

    assert orjson.loads(published.value)["account_id"] == "normal"
    (letter,) = await consume(kafka, _dlq(topics), 1)
    dead = DeadLetter.from_bytes(letter.value)
    assert (dead.reason, dead.account_id) == ("unreadable_score_change", "big")
    assert "risk_reasons.0" in dead.message
    assert (dead.original_size, dead.truncated) == (len(big), True)
    assert ready.status_code == 200, ready.text
    assert pending == (0,)


async def test_an_outbox_row_the_broker_refuses_is_dead_lettered_and_the_backlog_is_watched(
    alerts_stack: StackFactory, kafka: str, topics: dict[str, str], database: str
) -> None:
    """The row is too large for the producer's requests, as one an older version wrote
    could be. While it is held (locked, as a stuck relay would hold it) the backlog gauge
    and /readyz show it and later rows still go out; once free it is dead-lettered."""
    async with alerts_stack(publisher_stuck_after_s=60, dlq_topic=_dlq(topics)) as stack:
        old = stack.clock.now - timedelta(minutes=10)
        async with _held_row(database, old) as (row_id, written):
            pending = await wait_for(lambda: _pending_at_least(stack, 1), 30, "backlog to rise")
            stuck = await wait_for(lambda: _not_ready(stack), 30, "/readyz to name it")
            normal = _high_risk("normal", stack, "usage halved")
            await _produce_big(kafka, topics["scores_topic"], b"normal", normal)
            alerts_topic = f"{topics['scores_topic']}.alerts"
            (published,) = await consume(kafka, alerts_topic, 1, timeout_s=10)
        fallen = await wait_for(lambda: _pending_at_most(stack, 0), 30, "backlog to fall")
        await wait_for(lambda: is_ready(stack.api), 30, "/readyz to recover")
        refused = await _metric(
            stack, 'vitals_publisher_records_refused_total{outbox="alert_events"}'
        )

    assert pending[0] >= 1 and fallen == (0,)
    assert "publisher_alert_events" in stuck and "the oldest for 600s" in stuck
    assert orjson.loads(published.value)["account_id"] == "normal"
    letters = [DeadLetter.from_bytes(r.value) for r in await consume(kafka, _dlq(topics), written)]
    (dead,) = [d for d in letters if d.source == f"outbox:alert_events/{row_id}"]
    assert {d.reason for d in letters} == {"unpublishable"}
    assert "MessageSizeTooLargeError" in dead.message
    assert dead.truncated and dead.original_size > TWO_MB
    assert refused == written  # the held row, and any the relay took before it was held


async def test_an_event_larger_than_its_topic_takes_is_dead_lettered_and_the_next_goes_out(
    alerts_stack: StackFactory, kafka: str, topics: dict[str, str]
) -> None:
    """What the broker would refuse for the topic's max.message.bytes is found before
    sending, so it is blamed on its record, not taken for an outage."""
    alerts_topic = f"{topics['scores_topic']}.alerts"
    await _create_topic(kafka, alerts_topic, SMALL_TOPIC_BYTES)
    async with alerts_stack(dlq_topic=_dlq(topics)) as stack:
        await _produce_big(
            kafka, topics["scores_topic"], b"wide", _high_risk("wide", stack, *WIDE_REASONS)
        )
        await _produce_big(
            kafka, topics["scores_topic"], b"normal", _high_risk("normal", stack, "usage halved")
        )
        (published,) = await consume(kafka, alerts_topic, 1, timeout_s=10)
        letters = await consume(kafka, _dlq(topics), 1, timeout_s=10)

    assert orjson.loads(published.value)["account_id"] == "normal"
    (dead,) = [DeadLetter.from_bytes(r.value) for r in letters]
    assert (dead.reason, dead.account_id) == ("unpublishable", "wide")
    assert f"takes at most {SMALL_TOPIC_BYTES} (max.message.bytes)" in dead.message


async def test_a_topic_limit_lowered_while_running_is_learnt_and_stops_nothing(
    alerts_stack: StackFactory, kafka: str, topics: dict[str, str]
) -> None:
    """The relay knew the topic's old limit; the broker refuses the batch once (an outage,
    nothing marked), the limit is read again, and the record is dead-lettered."""
    alerts_topic = f"{topics['scores_topic']}.alerts"
    async with alerts_stack(dlq_topic=_dlq(topics)) as stack:
        await _produce_big(
            kafka, topics["scores_topic"], b"first", _high_risk("first", stack, "usage halved")
        )
        await consume(kafka, alerts_topic, 1, timeout_s=10)  # the old limit is known
        await _lower_limit(kafka, alerts_topic, SMALL_TOPIC_BYTES)
        await _produce_big(
            kafka, topics["scores_topic"], b"wide", _high_risk("wide", stack, *WIDE_REASONS)
        )
        await _produce_big(
            kafka, topics["scores_topic"], b"after", _high_risk("after", stack, "usage halved")
        )
        published = await consume(kafka, alerts_topic, 2, timeout_s=30, counts=_not_a_probe)
        letters = await consume(kafka, _dlq(topics), 1, timeout_s=10)

    events = [orjson.loads(r.value) for r in published if r.key != PROBE]
    assert [event["account_id"] for event in events] == ["first", "after"]
    (dead,) = [DeadLetter.from_bytes(r.value) for r in letters]
    assert (dead.reason, dead.account_id) == ("unpublishable", "wide")
    assert "(max.message.bytes)" in dead.message


def _not_a_probe(record: ConsumerRecord) -> bool:
    return bool(record.key != PROBE)


@asynccontextmanager
async def _held_row(database: str, created_at: datetime) -> AsyncIterator[tuple[str, int]]:
    """Write an oversized event row, then hold its lock until the block ends; gives its
    id and how many rows were written. If the relay took the row first (it wakes every
    few seconds), write another."""
    engine = create_engine(database)
    sessions = session_factory(engine)
    try:
        for written in range(1, 6):
            row_id = str(uuid.uuid4())
            async with sessions() as session, session.begin():
                session.add(_oversized(row_id, created_at))
            async with sessions() as session, session.begin():
                if await _lock(session, row_id):
                    yield row_id, written
                    return
        raise AssertionError("the relay took every row before the test could hold one")
    finally:
        await engine.dispose()


def _oversized(row_id: str, created_at: datetime) -> AlertEventRow:
    event = {"type": "alert.opened", "account_id": "older", "summary": "y" * TWO_MB}
    return AlertEventRow(
        id=row_id, account_id="older", event=event, created_at=created_at, ordinal=0
    )


async def _lock(session: AsyncSession, row_id: str) -> bool:
    query = (
        select(AlertEventRow.id)
        .where(AlertEventRow.id == row_id, AlertEventRow.published_at.is_(None))
        .with_for_update(skip_locked=True)
    )
    await session.execute(text("SET LOCAL lock_timeout = '1s'"))
    return (await session.scalar(query)) is not None


async def _pending_at_least(stack: AlertsStack, rows: int) -> tuple[float] | None:
    value = await _metric(stack, PENDING)
    return (value,) if value is not None and value >= rows else None


async def _pending_at_most(stack: AlertsStack, rows: int) -> tuple[float] | None:
    value = await _metric(stack, PENDING)
    return (value,) if value is not None and value <= rows else None


async def _not_ready(stack: AlertsStack) -> str | None:
    answer = await stack.api.get("/readyz")
    problem = answer.json()["checks"].get("publisher_alert_events", "ok")
    return f"publisher_alert_events: {problem}" if answer.status_code == 503 else None


async def test_a_sequence_past_32_bits_is_stored_and_its_change_alerts_once(
    alerts_stack: StackFactory, database: str
) -> None:
    sequence = 2**40
    async with alerts_stack() as stack:
        high = enriched_change(
            account_id="wide",
            sequence=sequence,
            computed_at=stack.clock.now,
            account=facts(last_usage_at=stack.clock.now),
            risk=Risk.high,
            previous_risk=Risk.low,
        )
        await stack.send(high, high)
        alerts = await wait_for(lambda: stack.alerts(account_id="wide"), 30, "the alert")
        cursor = await wait_for(lambda: _cursor(database, "wide"), 30, "the stored sequence")

    assert cursor == sequence
    assert [(a["rule"], a["notifications"]) for a in alerts] == [("churn_risk_raised", 1)]


async def _cursor(database: str, account_id: str) -> int | None:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            query = select(AccountCursor.last_sequence).where(
                AccountCursor.account_id == account_id
            )
            found: int | None = await session.scalar(query)
            return found
    finally:
        await engine.dispose()
