"""Publishes alert transitions to ``vitals.alerts`` and dead letters to the DLQ topic,
from their outbox tables, after the batch that wrote them committed.

Both go through ``shared.outbox.OutboxRelay`` (at least once, record faults
dead-lettered, backlog watched); each relay is driven on its own, so an outage or a
backlog of one never holds back the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError

from services.alerts import metrics, repository
from services.alerts.models import AlertsDeadLetter
from services.alerts.settings import AlertsSettings
from shared import dead_letter_outbox
from shared.clock import Clock
from shared.db import SessionFactory
from shared.errors import describe
from shared.faults import OutageLog
from shared.health import Readiness
from shared.kafka import BrokerUnavailable, TopicLimits, make_producer, start_with_retry
from shared.outbox import OutboxRecord, Relaying

log = logging.getLogger(__name__)

BATCH = 500
IDLE_INTERVAL_S = 5.0


class AlertsPublisher:
    def __init__(
        self,
        settings: AlertsSettings,
        sessions: SessionFactory,
        clock: Clock,
        readiness: Readiness | None = None,
    ) -> None:
        self._settings = settings
        self._wake = asyncio.Event()
        self._producer: AIOKafkaProducer | None = None
        self._outage = OutageLog(log, "publishing alert events and dead letters")
        self.events, self.dead_letters = dead_letter_outbox.relays(
            "alerts",
            ("alert_events", repository.AlertEventsOutbox(), settings.alerts_topic, _count),
            AlertsDeadLetter,
            settings.dlq_topic,
            metrics.DEAD_LETTERS_PUBLISHED,
            Relaying(
                sessions,
                clock,
                BATCH,
                TopicLimits.from_broker(settings),
                readiness,
                settings.publisher_stuck_after_s,
            ),
        )

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
                more = await self.publish_round()
                if not more:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), IDLE_INTERVAL_S)
        finally:
            self._producer = None
            await producer.stop()

    async def publish_round(self) -> bool:
        """One batch from each outbox; True when either may have more."""
        producer = self._producer
        if producer is None:
            return False
        more = False
        failed: list[str] = []
        for relay in (self.events, self.dead_letters):
            try:
                more = await relay.send_batch(producer) or more
            except (BrokerUnavailable, KafkaError, SQLAlchemyError, OSError) as exc:
                failed.append(f"{relay.name}: {describe(exc)}")
        if failed:
            self._outage.failed("; ".join(failed), IDLE_INTERVAL_S)
        else:
            self._outage.recovered()
        return more  # the other goes on at full speed while one fails


def _count(sent: Sequence[OutboxRecord]) -> None:
    metrics.EVENTS_PUBLISHED.inc(len(sent))
