"""Publishing normalised events to ``vitals.events`` (keyed by account) and dead
letters to ``vitals.events.dlq``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer

from services.ingest import metrics
from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter, dead_letter_records
from shared.events import Event
from shared.health import Readiness
from shared.kafka import (
    BrokerUnavailable,
    ensure_topics,
    make_producer,
    send_all,
    start_with_retry,
    topic_spec,
)


class EventPublisher:
    def __init__(self, settings: IngestSettings, readiness: Readiness) -> None:
        self._settings = settings
        self._readiness = readiness
        self._producer: AIOKafkaProducer | None = None
        self._connected = False
        self._connect_task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Connect in the background; until then ``publish`` answers BrokerUnavailable."""
        self._connect_task = asyncio.create_task(self._connect(), name="ingest-connect")

    async def _connect(self) -> None:
        report = self._readiness.reporter("kafka")
        await start_with_retry(
            "kafka", self._create_topics, report, self._settings.startup_retry_max_s
        )
        self._producer = make_producer(self._settings, "ingest")
        await start_with_retry(
            "kafka", self._producer.start, report, self._settings.startup_retry_max_s
        )
        self._connected = True
        report(None)

    async def _create_topics(self) -> None:
        topics = [self._settings.events_topic, self._settings.dlq_topic]
        await ensure_topics(self._settings, [topic_spec(self._settings, t) for t in topics])

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connect_task
        if self._producer is not None:
            await self._producer.stop()

    async def publish(self, events: Sequence[Event], letters: Sequence[DeadLetter] = ()) -> None:
        """Return once the broker acknowledged every event and letter (acks=all), else raise."""
        if not events and not letters:
            return
        if not self._connected or self._producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        started = time.perf_counter()
        timeout_s = self._settings.ingest_publish_timeout_s
        records = [(e.account_id.encode(), e.to_bytes()) for e in events]
        try:
            await asyncio.gather(
                send_all(self._producer, self._settings.events_topic, records, timeout_s),
                send_all(
                    self._producer,
                    self._settings.dlq_topic,
                    dead_letter_records(letters),
                    timeout_s,
                ),
            )
        except BrokerUnavailable as exc:
            self._readiness.report("kafka", f"last publish failed: {exc}")
            raise
        self._readiness.report("kafka", None)
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)
