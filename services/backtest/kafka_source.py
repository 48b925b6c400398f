"""History in from a Kafka topic of normalised events (``vitals.events``), in a time range.

Each partition is read by a consumer of its own, from the first record at or after
``since`` (by record timestamp) to the last record before ``until`` or the end the
partition had when the read began; partitions are merged by event time. Nothing is
committed: the backtest reads, it never moves a consumer group.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError

from services.backtest.sources import Intake, Timed
from shared.events import Event
from shared.settings import VitalsSettings

BATCH = 2_000


class KafkaSourceError(ValueError):
    """The topic cannot be read: the message says why."""


@contextmanager
def topic_events(
    settings: VitalsSettings, topic: str, since: datetime, until: datetime, intake: Intake
) -> Iterator[list[Iterator[Timed]]]:
    """One iterator per partition of ``topic``, each in its partition's order; the
    consumers and their event loop close when the context ends."""
    loop = asyncio.new_event_loop()
    readers: list[AsyncGenerator[list[Timed], None]] = []
    try:
        partitions = loop.run_until_complete(_partitions(settings, topic))
        for p in partitions:
            readers.append(_partition(settings, TopicPartition(topic, p), since, until, intake))
        yield [_blocking(loop, reader) for reader in readers]
    finally:
        for reader in readers:
            loop.run_until_complete(reader.aclose())
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _partitions(settings: VitalsSettings, topic: str) -> list[int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = described["partitions"] if described["error_code"] == 0 else []
    if not partitions:
        raise KafkaSourceError(f"topic {topic!r} does not exist or has no partitions")
    return sorted(p["partition"] for p in partitions)


async def _partition(
    settings: VitalsSettings, tp: TopicPartition, since: datetime, until: datetime, intake: Intake
) -> AsyncGenerator[list[Timed], None]:
    consumer = _consumer(settings)
    await consumer.start()
    try:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        start = (await consumer.offsets_for_times({tp: int(since.timestamp() * 1000)}))[tp]
        if start is None or start.offset >= end:
            return
        consumer.seek(tp, start.offset)
        until_ms = int(until.timestamp() * 1000)
        while True:
            batch = (await consumer.getmany(tp, timeout_ms=1_000, max_records=BATCH)).get(tp, [])
            timed, done = _read(batch, end, until_ms, intake)
            if timed:
                yield timed
            if done or (not batch and await consumer.position(tp) >= end):
                return
    finally:
        await consumer.stop()


def _read(
    records: list[ConsumerRecord[bytes, bytes]], end: int, until_ms: int, intake: Intake
) -> tuple[list[Timed], bool]:
    """The events of ``records`` up to the end or ``until``; and whether that was reached."""
    timed: list[Timed] = []
    for record in records:
        offset = record.offset
        if offset >= end or record.timestamp >= until_ms:
            return timed, True
        value: bytes = record.value or b""
        intake.lines += 1
        intake.bytes_read += len(value)
        try:
            event = Event.from_bytes(value)
        except (ValidationError, ValueError):
            intake.reject("unreadable_event")
            continue
        intake.events += 1
        timed.append((event.occurred_at, offset, event))
    return timed, bool(records) and records[-1].offset >= end - 1


def _blocking(
    loop: asyncio.AbstractEventLoop, batches: AsyncIterator[list[Timed]]
) -> Iterator[Timed]:
    """An async stream of batches as a plain iterator, one loop turn per batch."""
    while True:
        try:
            batch = loop.run_until_complete(batches.__anext__())
        except StopAsyncIteration:
            return
        yield from batch


def _consumer(settings: VitalsSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-backtest",
        enable_auto_commit=False,
        group_id=None,
    )
