"""``vitals backtest`` on a Kafka topic of normalised events, in a time range."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer

from services.backtest import run
from shared.kafka import ensure_topics, topic_spec
from shared.settings import VitalsSettings
from tests.support.scoring_builders import usage

pytestmark = [pytest.mark.kafka]


async def test_a_topic_is_replayed_within_its_time_range_by_every_partition(
    kafka: str, topics: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    topic = topics["events_topic"]
    settings = VitalsSettings(kafka_bootstrap_servers=kafka, topic_partitions=3)
    await ensure_topics(settings, [topic_spec(settings, topic)])
    now = datetime.now(UTC)
    start = now - timedelta(days=20)
    events = [
        usage(account_id=f"a{n % 3}", at=start + timedelta(days=n // 3), user_id=f"u{n}")
        for n in range(60)
    ]
    before = usage(account_id="early", at=start)
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        old = int((now - timedelta(days=2)).timestamp() * 1000)
        await producer.send_and_wait(topic, before.to_bytes(), b"early", timestamp_ms=old)
        for event in events:
            await producer.send_and_wait(topic, event.to_bytes(), event.account_id.encode())
        await producer.send_and_wait(topic, b"{not an event", b"a0")
    finally:
        await producer.stop()
    monkeypatch.setenv("VITALS_KAFKA_BOOTSTRAP_SERVERS", kafka)
    window = run.TopicRange(topic, now - timedelta(hours=1), now + timedelta(hours=1))

    result = await asyncio.to_thread(
        run.backtest,
        run.Inputs(kafka=window),
        run.load_models([]),
        run.Outputs(),
        progress=False,
    )

    assert (result.intake.events, dict(result.intake.rejected)) == (60, {"unreadable_event": 1})
    (report,) = result.reports
    assert report["accounts"] == 3 and report["days"] == 20
