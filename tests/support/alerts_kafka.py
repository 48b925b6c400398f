"""Kafka helpers for the alerts tests that need many messages fast."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer


async def produce_many(bootstrap: str, topic: str, records: Sequence[tuple[bytes, bytes]]) -> None:
    """Send ``records`` in order per key, waiting for the broker to have every one."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sent = [await producer.send(topic, value=value, key=key) for key, value in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
