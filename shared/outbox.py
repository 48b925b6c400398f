"""The outbox relay: rows a batch wrote in its transaction, sent to their topic after it
committed. Scoring's score changes, alerts' events and both services' dead letters
go through it.

At least once: rows are locked while sent and marked sent only once the broker
acknowledged them; a crash in between sends them again, and consumers dedupe.

A record the broker refuses as such (too large, invalid: ``RECORD_FAULTS``) is a
fault of that record, not an outage: it is dead-lettered with the reason, marked
sent, and the rows after it go on. Anything else is an outage: nothing is marked,
and the caller retries the batch later.

Each relay also watches its backlog (rows waiting, age of the oldest): exported as
metrics, and named on ``/readyz`` once the oldest row waits past ``stuck_after_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.clock import Clock
from shared.db import SessionFactory
from shared.dlq import DeadLetter
from shared.errors import describe
from shared.health import Readiness
from shared.kafka import send_each
from shared.metrics import (
    PUBLISHER_OLDEST_AGE_SECONDS,
    PUBLISHER_PENDING_ROWS,
    PUBLISHER_RECORDS_REFUSED,
)

log = logging.getLogger(__name__)

OBSERVE_INTERVAL_S = 5.0
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
        self._readiness = relaying.readiness
        self._stuck_after_s = relaying.stuck_after_s
        self._refusals = refusals
        self._counted = counted
        self._observed = -OBSERVE_INTERVAL_S

    async def drain(self, producer: AIOKafkaProducer) -> None:
        """Send batches until none is left (raises ``BrokerUnavailable`` on an outage)."""
        while await self.send_batch(producer):
            pass

    async def send_batch(self, producer: AIOKafkaProducer) -> bool:
        """Send one batch; True when there may be more."""
        async with self._sessions() as session, session.begin():
            records = await self._table.claim(session, self._batch)
            if not records:
                return False
            faults = await send_each(producer, self._topic, [(r.key, r.value) for r in records])
            now = self._clock()
            refused = [(r, f) for r, f in zip(records, faults, strict=True) if f is not None]
            if refused:
                await self._refuse(session, refused, now)
            await self._table.mark_sent(session, [r.row_id for r in records], now)
        sent = [r for r, f in zip(records, faults, strict=True) if f is None]
        self._counted(sent)
        return len(records) == self._batch

    async def observe_due(self) -> Backlog | None:
        """``observe``, at most once every ``OBSERVE_INTERVAL_S``; None when not due, or
        when the database cannot tell (its probe on /readyz says so)."""
        if time.monotonic() - self._observed < OBSERVE_INTERVAL_S:
            return None
        try:
            return await self.observe()
        except (SQLAlchemyError, OSError) as exc:
            log.debug("%s backlog not read: %s", self.name, describe(exc))
            return None

    async def observe(self) -> Backlog:
        """Read the backlog, export it and report a stuck publisher to readiness."""
        self._observed = time.monotonic()
        async with self._sessions() as session:
            backlog = await self._table.backlog(session)
        age = backlog.age_s(self._clock())
        PUBLISHER_PENDING_ROWS.labels(self.name).set(backlog.rows)
        PUBLISHER_OLDEST_AGE_SECONDS.labels(self.name).set(age)
        if self._readiness is not None:
            stuck = age > self._stuck_after_s
            problem = f"{backlog.rows} rows waiting for {self._topic}, the oldest for {age:.0f}s"
            self._readiness.report(self.check, problem if stuck else None)
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
            log.error(
                "%s row %s refused by the broker, dead-lettered: %s", self.name, record.row_id, why
            )
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
            message=f"the broker refused this record for {self._topic}: {why}",
            source=f"outbox:{self.name}/{record.row_id}",
            rejected_at=now,
            processor=processor,
            topic=self._topic,
            account_id=record.key.decode(errors="replace"),
        )
