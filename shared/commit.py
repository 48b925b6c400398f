"""Commit policies of the consume spine: where a batch's effects and its next offsets are
stored together, and where a partition resumes after a rebalance or a restart.

- :class:`DatabaseOffsets`: a batch's effects and next offsets in one database
  transaction (the *unit* of the batch is a session); positions are read back from
  the database on assignment, so a crash anywhere replays only what was not flushed.
  With a fenced offsets table (``shared.offsets``) assignment claims the partitions and
  every write lands only where the claim is still ours. Kafka's own commit comes after
  and is informational.
- :class:`KafkaCommit`: a batch stores its effects itself (the raw intake publishes
  events and dead letters and waits for the broker's acknowledgement); its next
  offsets are then committed to Kafka, which says where a partition resumes. Delivery
  is at least once: a crash before the commit brings the records again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory
from shared.lag import CommittedPositions, DatabasePositions, PositionStore
from shared.offsets import (
    NOT_CONSUMED,
    check_epochs,
    claim_partitions,
    is_fenced,
    load_offsets,
    save_offsets,
)

log = logging.getLogger(__name__)

Positions = dict[TopicPartition, int]
Unit = TypeVar("Unit")
"""What a batch's effects are written in: a database session, or nothing."""
COMMIT_TIMEOUT_S = 10.0
FROM_KAFKA = 0  # every fetched record is new: Kafka's position is the stored one


class CommitPolicy(Protocol[Unit]):
    """How the spine stores positions; see the module's doc."""

    def unit(self) -> AbstractAsyncContextManager[Unit]:
        """Open what one batch's effects and positions are written in, together."""

    async def store(self, unit: Unit, positions: Positions) -> None:
        """Record the next offsets of a batch whose effects ``unit`` holds."""

    async def assigned(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> Positions:
        """Position newly assigned partitions; the next offset to apply of each."""

    async def revoked(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        """Hand partitions over: what was stored of them is made durable."""

    async def batch_done(self, consumer: AIOKafkaConsumer, positions: Positions) -> None:
        """After a batch's effects were published: commit to Kafka what is stored."""

    async def stopping(self, consumer: AIOKafkaConsumer) -> None:
        """Before the consumer leaves the group: make durable what can be."""

    def owned_for_work(self, owned: set[TopicPartition]) -> set[TopicPartition]:
        """The partitions periodic work may act for."""

    async def check_claims(self, unit: Unit, partitions: set[TopicPartition]) -> None:
        """Fail the unit if another consumer claimed ``partitions`` meanwhile."""

    def positions(self, group_id: str) -> PositionStore:
        """Where the lag probe reads the group's positions."""


class DatabaseOffsets:
    """Offsets in the batch's database transaction, fenced when the table is."""

    def __init__(self, sessions: SessionFactory, table: Table, group_id: str) -> None:
        self._sessions = sessions
        self._table = table
        self._group_id = group_id
        self._fenced = is_fenced(table)
        self._epochs: dict[TopicPartition, int] = {}

    @contextlib.asynccontextmanager
    async def _transaction(self) -> AsyncIterator[AsyncSession]:
        async with self._sessions() as session, session.begin():
            yield session

    def unit(self) -> AbstractAsyncContextManager[AsyncSession]:
        return self._transaction()

    async def store(self, unit: AsyncSession, positions: Positions) -> None:
        epochs = self._epochs if self._fenced else None
        await save_offsets(unit, self._table, self._group_id, positions, epochs)

    async def assigned(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> Positions:
        async with self._transaction() as session:
            if self._fenced:
                self._epochs = await claim_partitions(
                    session, self._table, self._group_id, partitions
                )
            stored = await load_offsets(session, self._table, self._group_id, partitions)
        for tp in partitions:
            if tp in stored:
                consumer.seek(tp, stored[tp])
            else:
                await consumer.seek_to_beginning(tp)
        return {tp: stored.get(tp, NOT_CONSUMED) for tp in partitions}

    async def revoked(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        self._epochs = {tp: e for tp, e in self._epochs.items() if tp not in partitions}

    async def batch_done(self, consumer: AIOKafkaConsumer, positions: Positions) -> None:
        if not positions:
            return
        try:
            await consumer.commit(positions)
        except KafkaError as exc:  # informational only: the database holds the truth
            log.info("kafka commit skipped: %s", exc)

    async def stopping(self, consumer: AIOKafkaConsumer) -> None:
        self._epochs = {}

    def owned_for_work(self, owned: set[TopicPartition]) -> set[TopicPartition]:
        return {tp for tp in owned if tp in self._epochs} if self._fenced else set(owned)

    async def check_claims(self, unit: AsyncSession, partitions: set[TopicPartition]) -> None:
        if self._fenced:
            epochs = {tp: self._epochs[tp] for tp in partitions}
            await check_epochs(unit, self._table, self._group_id, epochs)

    def positions(self, group_id: str) -> PositionStore:
        return DatabasePositions(self._sessions, self._table, group_id)


class KafkaCommit:
    """Offsets committed to Kafka once a batch's effects are acknowledged elsewhere."""

    def __init__(self, commit_timeout_s: float = COMMIT_TIMEOUT_S) -> None:
        self._commit_timeout_s = commit_timeout_s
        self._pending: Positions = {}
        """Next offsets of batches whose effects are stored, not committed yet."""

    def unit(self) -> AbstractAsyncContextManager[None]:
        return contextlib.nullcontext()

    async def store(self, unit: None, positions: Positions) -> None:
        self._pending.update(positions)

    async def assigned(
        self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]
    ) -> Positions:
        return dict.fromkeys(partitions, FROM_KAFKA)

    async def revoked(self, consumer: AIOKafkaConsumer, partitions: set[TopicPartition]) -> None:
        # Committing before the partitions move hands them over without a redelivery.
        await self._commit(consumer, {tp: o for tp, o in self._pending.items() if tp in partitions})
        for tp in partitions:
            self._pending.pop(tp, None)

    async def batch_done(self, consumer: AIOKafkaConsumer, positions: Positions) -> None:
        owned = consumer.assignment()
        self._pending = {tp: o for tp, o in self._pending.items() if tp in owned}
        await self._commit(consumer, dict(self._pending))

    async def stopping(self, consumer: AIOKafkaConsumer) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.batch_done(consumer, {}), self._commit_timeout_s)
        self._pending.clear()

    def owned_for_work(self, owned: set[TopicPartition]) -> set[TopicPartition]:
        return set(owned)

    async def check_claims(self, unit: None, partitions: set[TopicPartition]) -> None:
        return None

    def positions(self, group_id: str) -> PositionStore:
        return CommittedPositions(group_id)

    async def _commit(self, consumer: AIOKafkaConsumer, positions: Positions) -> None:
        if not positions:
            return
        try:
            await consumer.commit(positions)
        except KafkaError as exc:
            # Not committed: the records come again, and their effects are deduplicated.
            log.info("kafka commit skipped: %s", exc)
            return
        for tp, offset in positions.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]
