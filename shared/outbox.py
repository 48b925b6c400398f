"""The outbox relay: rows a batch wrote in its transaction, sent to their topic after it
committed. Scoring's score changes, alerts' events and both services' dead letters
go through it.

At least once: rows are locked while sent and marked sent only once the broker
acknowledged them; a crash in between sends them again, and consumers dedupe.

A record refused as such before it is sent (larger than a request may be, or than its
topic's ``max.message.bytes``: ``shared.kafka.RECORD_FAULT``) is a fault of that record,
not an outage: it is dead-lettered with the reason, marked sent, and the rows after it
go on. Anything else, what the broker answers included, is an outage: nothing is
marked, the topic's limit is read again, and the caller retries the batch later. So a
limit an operator lowers under a waiting record costs one refused batch, after which
the record is dead-lettered by the check before sending.

Each relay's backlog (rows waiting, age of the oldest) is a probe of ``/readyz``,
read afresh at every ``/readyz`` and every scrape of ``/metrics`` whether or not the
relay runs: exported as metrics, and named once the oldest row waits past
``stuck_after_s``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import QueryableAttribute

from shared.clock import Clock
from shared.db import SessionFactory
from shared.dlq import DeadLetter
from shared.errors import describe
from shared.health import Readiness
from shared.kafka import BrokerUnavailable, TopicLimits, send_each
from shared.metrics import (
    PUBLISHER_OLDEST_AGE_SECONDS,
    PUBLISHER_PENDING_ROWS,
    PUBLISHER_RECORDS_REFUSED,
)

log = logging.getLogger(__name__)

STUCK_AFTER_S = 120.0


@dataclass(frozen=True)
class OutboxRecord:
    """One row to send: its id in its table, the record, and what counts it."""

    row_id: int | str
    key: bytes
    value: bytes
    label: str = ""


@dataclass(frozen=True)
class Backlog:
    rows: int
    oldest_at: datetime | None

    def age_s(self, now: datetime) -> float:
        return max((now - self.oldest_at).total_seconds(), 0.0) if self.oldest_at else 0.0


async def backlog_of(
    session: AsyncSession, unsent: ColumnElement[bool], since: QueryableAttribute[datetime]
) -> Backlog:
    """The backlog of an outbox table: its ``unsent`` rows, the oldest by ``since``."""
    query = select(func.count(), func.min(since)).where(unsent)
    rows, oldest = (await session.execute(query)).one()
    return Backlog(rows, oldest)


class OutboxTable(Protocol):
    """The statements of one outbox table (its service's repository owns them)."""

    async def claim(self, session: AsyncSession, limit: int) -> Sequence[OutboxRecord]:
        """The oldest unsent rows, locked until the session's transaction ends."""

    async def mark_sent(
        self, session: AsyncSession, row_ids: list[int | str], now: datetime
    ) -> None:
        """Rows sent, or dead-lettered: out of the backlog."""

    async def backlog(self, session: AsyncSession) -> Backlog:
        """How many rows wait, and since when."""


@dataclass(frozen=True)
class Refusals:
    """Where a refused record goes: ``stage`` writes its dead letter, in the relay's
    transaction, into the service's dead-letter outbox (``dead_letter_outbox.refusals``).
    None for the dead-letter outbox itself: its refused rows are logged and counted."""

    stage: Callable[[AsyncSession, Sequence[DeadLetter], datetime], Awaitable[None]]
    processor: str


@dataclass(frozen=True)
class Relaying:
    """What the relays of one service share."""

    sessions: SessionFactory
    clock: Clock
    batch: int
    limits: TopicLimits
    readiness: Readiness | None = None
    stuck_after_s: float = STUCK_AFTER_S


class OutboxRelay:
    """Sends one outbox table to one topic; see the module's doc."""

    def __init__(
        self,
        name: str,
        table: OutboxTable,
        topic: str,
        relaying: Relaying,
        *,
        refusals: Refusals | None,
        counted: Callable[[Sequence[OutboxRecord]], None],
    ) -> None:
        self.name = name
        self.check = f"publisher_{name}"
        self._table = table
        self._topic = topic
        self._sessions = relaying.sessions
        self._clock = relaying.clock
        self._batch = relaying.batch
        self._limits = relaying.limits
        self._readiness = relaying.readiness
        self._stuck_after_s = relaying.stuck_after_s
        self._refusals = refusals
        self._counted = counted
        if relaying.readiness is not None:
            relaying.readiness.add_probe(self.check, self.backlog_problem)

    async def send_batch(self, producer: AIOKafkaProducer) -> bool:
        """Send one batch; True when there may be more."""
        async with self._sessions() as session, session.begin():
            records = await self._table.claim(session, self._batch)
            if not records:
                return False
            faults = await self._send(producer, records)
            now = self._clock()
            refused = [(r, f) for r, f in zip(records, faults, strict=True) if f is not None]
            if refused:
                await self._refuse(session, refused, now)
            await self._table.mark_sent(session, [r.row_id for r in records], now)
        sent = [r for r, f in zip(records, faults, strict=True) if f is None]
        self._counted(sent)
        return len(records) == self._batch

    async def _send(
        self, producer: AIOKafkaProducer, records: Sequence[OutboxRecord]
    ) -> list[KafkaError | None]:
        limit = await self._limits.of(self._topic)
        pairs = [(r.key, r.value) for r in records]
        try:
            return await send_each(producer, self._topic, pairs, limit)
        except BrokerUnavailable:
            self._limits.forget(self._topic)  # perhaps lowered under a waiting record
            raise

    async def backlog_problem(self) -> str | None:
        """The probe: read the backlog, export it, and say whether it is stuck."""
        try:
            backlog = await self.observe()
        except (SQLAlchemyError, OSError) as exc:
            return f"backlog not read: {describe(exc)}"
        age = backlog.age_s(self._clock())
        if age <= self._stuck_after_s:
            return None
        return f"{backlog.rows} rows waiting for {self._topic}, the oldest for {age:.0f}s"

    async def observe(self) -> Backlog:
        """Read the backlog and export it as metrics."""
        async with self._sessions() as session:
            backlog = await self._table.backlog(session)
        PUBLISHER_PENDING_ROWS.labels(self.name).set(backlog.rows)
        PUBLISHER_OLDEST_AGE_SECONDS.labels(self.name).set(backlog.age_s(self._clock()))
        return backlog

    async def _refuse(
        self,
        session: AsyncSession,
        refused: list[tuple[OutboxRecord, KafkaError]],
        now: datetime,
    ) -> None:
        letters = []
        for record, fault in refused:
            PUBLISHER_RECORDS_REFUSED.labels(self.name).inc()
            why = f"{type(fault).__name__}: {fault}"
            kept = "dead-lettered" if self._refusals is not None else "dropped"
            log.error("%s row %s cannot be published, %s: %s", self.name, record.row_id, kept, why)
            if self._refusals is not None:
                letters.append(self._dead_letter(record, why, now, self._refusals.processor))
        if self._refusals is not None:
            await self._refusals.stage(session, letters, now)

    def _dead_letter(
        self, record: OutboxRecord, why: str, now: datetime, processor: str
    ) -> DeadLetter:
        return DeadLetter.of(
            record.value,
            reason="unpublishable",
            message=f"this record cannot be published to {self._topic}: {why}",
            source=f"outbox:{self.name}/{record.row_id}",
            rejected_at=now,
            processor=processor,
            topic=self._topic,
            account_id=record.key.decode(errors="replace"),
        )


async def drain_all(relays: Sequence[OutboxRelay], producer: AIOKafkaProducer) -> None:
    """A batch from each relay in turn until all are empty, so neither a backlog nor an
    outage of one holds another back; then raises the first outage, if any."""
    pending = list(relays)
    failures: list[BrokerUnavailable] = []
    while pending:
        for relay in list(pending):
            try:
                more = await relay.send_batch(producer)
            except BrokerUnavailable as exc:
                failures.append(exc)
                more = False
            if not more:
                pending.remove(relay)
    if failures:
        raise failures[0]
