"""Publishing normalised events to ``vitals.events`` (keyed by account) and dead
letters to ``vitals.events.dlq``."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from services.ingest import metrics
from services.ingest.settings import IngestSettings
from shared.dlq import DeadLetter, dead_letter_records
from shared.events import Event
from shared.health import Readiness
from shared.kafka import (
    BrokerUnavailable,
    ensure_topics,
    make_producer,
    start_with_retry,
    topic_spec,
)

T = TypeVar("T")


class EventPublisher:
    def __init__(self, settings: IngestSettings, readiness: Readiness) -> None:
        self._settings = settings
        self._readiness = readiness
        self._producer: AIOKafkaProducer | None = None
        self._connected = False
        self._connect_task: asyncio.Task[None] | None = None
        self._last_failure: str | None = None
        readiness.add_probe("publishing", self._publishing_problem)

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
        """Return once the broker acknowledged every event and letter (acks=all), else raise.

        Raises ``BrokerUnavailable`` when nothing was handed to the producer, and
        ``Unacknowledged`` when records were handed over but not all acknowledged in
        time: those may still be stored, and its ``acknowledgements`` will tell.
        """
        if not events and not letters:
            return
        if not self._connected or self._producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        started = time.perf_counter()
        sent = await self._send(self._producer, events, letters)
        everything = asyncio.gather(*sent.events.values(), *sent.letters)
        everything.add_done_callback(_retrieve)
        try:
            await asyncio.wait_for(
                asyncio.shield(everything), self._settings.ingest_publish_timeout_s
            )
        except (KafkaError, TimeoutError) as exc:
            problem = f"{type(exc).__name__}: {exc}".rstrip(": ")
            self._last_failure = f"last publish failed: {type(exc).__name__}"
            raise Unacknowledged(problem, sent.events) from exc
        self._last_failure = None
        metrics.PRODUCE_SECONDS.observe(time.perf_counter() - started)

    async def _send(
        self, producer: AIOKafkaProducer, events: Sequence[Event], letters: Sequence[DeadLetter]
    ) -> Sent:
        sent = Sent()
        try:
            for event in events:
                sent.events[event.event_id] = await producer.send(
                    self._settings.events_topic,
                    value=event.to_bytes(),
                    key=event.account_id.encode(),
                )
            for key, value in dead_letter_records(letters):
                sent.letters.append(
                    await producer.send(self._settings.dlq_topic, value=value, key=key)
                )
        except KafkaError as exc:
            for future in (*sent.events.values(), *sent.letters):
                future.add_done_callback(_retrieve)
            problem = f"{type(exc).__name__}: {exc}"
            self._last_failure = f"last publish failed: {type(exc).__name__}"
            raise Unacknowledged(problem, sent.events) from exc
        return sent

    async def _publishing_problem(self) -> str | None:
        """``/readyz``: after a failed publish, whether the broker answers again.

        A replica taken out of rotation gets no request to publish, so it asks the
        broker for its metadata itself instead of waiting for the next publish."""
        if self._last_failure is None or self._producer is None:
            return self._last_failure
        try:
            await self._producer.client.fetch_all_metadata()
        except (KafkaError, OSError):
            return self._last_failure
        self._last_failure = None
        return None


@dataclass
class Sent:
    """Acknowledgements to come, of each event by id and of the dead letters."""

    events: dict[str, asyncio.Future[object]] = field(default_factory=dict)
    letters: list[asyncio.Future[object]] = field(default_factory=list)


class Unacknowledged(BrokerUnavailable):
    """Records were handed to the producer but not all acknowledged in time.

    ``acknowledgements`` (event id -> the producer's future) settle later: an event
    whose future succeeds was stored after all; one missing here was never sent.
    """

    def __init__(
        self, problem: str, acknowledgements: Mapping[str, asyncio.Future[object]]
    ) -> None:
        super().__init__(problem)
        self.acknowledgements = dict(acknowledgements)


def _retrieve(future: asyncio.Future[T]) -> None:
    # The outcome is read where it matters; this keeps asyncio from reporting it as lost.
    if not future.cancelled():
        future.exception()
