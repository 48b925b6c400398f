"""Publishes alert transitions from the outbox table to ``vitals.alerts`` after commit.

At least once: a row is marked published only after the broker acknowledged it; a
crash in between sends it again with the same ``event_id``, which consumers dedupe on.
Rows are claimed with SKIP LOCKED, so replicas never publish the same row at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from services.alerts import metrics, repository
from services.alerts.models import AlertsDeadLetter
from services.alerts.settings import AlertsSettings
from shared import dead_letter_outbox
from shared.db import SessionFactory
from shared.errors import describe
from shared.faults import OutageLog
from shared.kafka import BrokerUnavailable, make_producer, send_all, start_with_retry

log = logging.getLogger(__name__)

BATCH = 500
IDLE_INTERVAL_S = 5.0


class EventPublisher:
    def __init__(
        self, settings: AlertsSettings, sessions: SessionFactory, clock: Callable[[], datetime]
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._clock = clock
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._outage = OutageLog(log, "publishing alert events and dead letters")

    def poke(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        producer = make_producer(self._settings, "alerts")
        await start_with_retry(
            "kafka", producer.start, lambda _: None, self._settings.startup_retry_max_s
        )
        self._producer = producer
        try:
            while True:
                self._wake.clear()  # before looking, so a poke during the round is kept
                try:
                    events_pending = await self.publish_pending()
                    more = await self.publish_dead_letters() or events_pending
                except (BrokerUnavailable, KafkaError, SQLAlchemyError, OSError) as exc:
                    self._outage.failed(describe(exc), IDLE_INTERVAL_S)
                    more = False
                else:
                    self._outage.recovered()
                if not more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), IDLE_INTERVAL_S)
        finally:
            self._producer = None
            await producer.stop()

    async def publish_dead_letters(self) -> bool:
        """Send one batch of dead letters to the DLQ topic; ``True`` when there may be more."""
        producer = self._producer
        if producer is None:
            return False
        return await dead_letter_outbox.publish_pending(
            self._sessions,
            AlertsDeadLetter,
            producer,
            self._settings.dlq_topic,
            self._clock(),
            BATCH,
            metrics.DEAD_LETTERS_PUBLISHED,
        )

    async def publish_pending(self) -> bool:
        """Publish one batch; ``True`` when there may be more."""
        producer = self._producer
        if producer is None:
            return False
        async with self._sessions() as session, session.begin():
            rows = await repository.unpublished_events(session, BATCH)
            if not rows:
                return False
            records = [
                (row.account_id.encode(), orjson.dumps({"event_id": row.id, **row.event}))
                for row in rows
            ]
            await send_all(producer, self._settings.alerts_topic, records)
            now = self._clock()
            for row in rows:
                row.published_at = now
        metrics.EVENTS_PUBLISHED.inc(len(rows))
        return len(rows) == BATCH
