"""Topics a service creates can be consumed at once, by a consumer that starts right after."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import ensure_topics, topic_spec
from shared.settings import VitalsSettings

pytestmark = [pytest.mark.kafka]

PARTITIONS = 3


async def test_a_consumer_subscribing_right_after_creation_is_assigned_every_partition(
    kafka: str,
) -> None:
    """Without waiting for the broker's metadata, a consumer could be told the topic does
    not exist and wait five minutes (aiokafka's metadata refresh) for its partitions."""
    settings = VitalsSettings(kafka_bootstrap_servers=kafka, topic_partitions=PARTITIONS)
    for _ in range(5):
        topic = f"test.{uuid.uuid4().hex[:10]}.fresh"
        await ensure_topics(settings, [topic_spec(settings, topic)])
        consumer = AIOKafkaConsumer(
            bootstrap_servers=kafka, group_id=f"{topic}-group", enable_auto_commit=False
        )
        await consumer.start()
        try:
            consumer.subscribe([topic])
            await asyncio.wait_for(_assigned(consumer, PARTITIONS), 20)
        finally:
            await consumer.stop()


async def test_existing_topics_are_left_as_they_are(kafka: str) -> None:
    topic = f"test.{uuid.uuid4().hex[:10]}.kept"
    for partitions in (2, 5):
        settings = VitalsSettings(kafka_bootstrap_servers=kafka, topic_partitions=partitions)
        await ensure_topics(settings, [topic_spec(settings, topic)])

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert len(described["partitions"]) == 2


async def _assigned(consumer: AIOKafkaConsumer, partitions: int) -> None:
    while len(consumer.assignment()) < partitions:
        await consumer.getmany(timeout_ms=100)
