"""Reading and writing test topics directly, to check what the services did."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord


async def produce(bootstrap: str, topic: str, records: Iterable[tuple[bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(topic, value=value, key=key)
    finally:
        await producer.stop()


async def produce_many(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Send ``records`` in order per key, waiting for the broker to have every one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def consume(
    bootstrap: str,
    topic: str,
    count: int,
    timeout_s: float = 30,
    counts: Callable[[ConsumerRecord], bool] = lambda _: True,
) -> list[ConsumerRecord]:
    """Read ``topic`` from the beginning until ``count`` records that ``counts`` came,
    or fail."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"test-reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[ConsumerRecord] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while asyncio.get_running_loop().time() < deadline:
            if sum(map(counts, records)) >= count:
                break
            batch = await consumer.getmany(timeout_ms=200)
            records.extend(r for rs in batch.values() for r in rs)
    finally:
        await consumer.stop()
    counted = sum(map(counts, records))
    assert counted >= count, f"{counted} of {count} records on {topic} in {timeout_s}s"
    return records
