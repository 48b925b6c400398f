"""The consume loop shared by scoring and alerts: decode -> apply -> flush -> commit.

Each batch from ``getmany`` is applied and flushed in ONE database transaction
together with the next offset of every partition in it; derived messages are sent
only after that commit, and Kafka's own commit comes last and is informational.
On assignment, positions are read back from the database, which is the source of
truth, so a crash anywhere replays only what was not flushed.

With a fenced offsets table (``shared.offsets``), assignment also claims the
partitions, and every flush writes only where the claim is still ours: a replica
that lost its partitions without noticing rolls back instead of overwriting.
Optional periodic work (a sweep) runs in bounded chunks between batches, under
the same lock and the same fence, so it never holds the loop for long.

One bad record never stops a partition: when applying a batch fails for any reason
but a transient one (``shared.faults``), the batch is split in halves, each applied
in its own transaction, down to the one record that fails; that record is handed to
the handler's ``reject`` (a dead letter with the error) in a transaction that also
moves the partition past it. A transient failure restarts the consumer with backoff
from the stored positions instead. ``/readyz`` says when the consumer restarts or
makes no progress while records wait; ``/healthz`` fails when it has been stuck so
long that only a restart of the process will help.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Protocol

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy import Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from shared import metrics
from shared.db import SessionFactory
from shared.errors import describe
from shared.faults import Restarts, is_transient
from shared.health import Readiness
from shared.kafka import RebalanceListener, start_with_retry
from shared.lag import DatabasePositions, LagProbe
from shared.offsets import (
    NOT_CONSUMED,
    check_epochs,
    claim_partitions,
    is_fenced,
    load_offsets,
    save_offsets,
)
from shared.settings import VitalsSettings

log = logging.getLogger(__name__)

Records = list[ConsumerRecord]


class BatchHandler(Protocol):
    """What a service plugs into the loop; ``apply`` must not do I/O outside ``session``."""

    async def apply(self, session: AsyncSession, records: Records) -> None: ...

    async def reject(self, session: AsyncSession, record: ConsumerRecord, problem: str) -> None:
        """Stage a dead letter for ``record``, whose handling failed with ``problem``."""

    async def after_commit(self) -> None:
        """Publish what the committed batch produced (may raise BrokerUnavailable)."""

    def forget(self) -> None:
        """Drop whatever is kept in memory between batches: partitions moved, or a batch
        may not have committed."""


class PeriodicWork(Protocol):
    """Work a service does besides batches, e.g. re-scoring every account hourly."""

    def due(self) -> bool:
        """Whether a chunk should run now (cheap; no I/O)."""

    async def run_chunk(self, session: AsyncSession, owned: set[TopicPartition]) -> bool:
        """Do one bounded chunk for the ``owned`` partitions; True while more is pending."""


class TransactionalConsumer:
    def __init__(
        self,
        *,
        name: str,
        topic: str,
        group_id: str,
        make_consumer: Callable[[], AIOKafkaConsumer],
        sessions: SessionFactory,
        offsets_table: Table,
        handler: BatchHandler,
        readiness: Readiness,
        max_records: int = 500,
        retry_max_s: float = 30.0,
        periodic: PeriodicWork | None = None,
        stalled_after_s: float = 120.0,
        stuck_after_s: float = 600.0,
        broker_silent_after_s: float = 30.0,
    ) -> None:
        self.name = name
        self.topic = topic
        self.group_id = group_id
        self._make_consumer = make_consumer
        self._sessions = sessions
        self._offsets = offsets_table
        self._handler = handler
        self._readiness = readiness
        self._max_records = max_records
        self._retry_max_s = retry_max_s
        self._batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._assignment_error: Exception | None = None
        self._periodic = periodic
        self._periodic_pending = False
        self._fenced = is_fenced(offsets_table)
        self._epochs: dict[TopicPartition, int] = {}
        # Next offset to apply per partition, from the database at assignment: records
        # below it were fetched from Kafka's (older) position before our seek landed.
        self._next: dict[TopicPartition, int] = {}
        # Backoff grows across restarts until a batch commits again: a database that
        # stays away is not met with a rejoin every half second.
        self._restarts = Restarts(
            log, f"{name} consumer", readiness.reporter("consumer"), retry_max_s
        )
        self._stalled_after_s = stalled_after_s
        self._stuck_after_s = stuck_after_s
        self._last_progress = time.monotonic()
        self._broker_silent_after_s = broker_silent_after_s
        readiness.add_probe("progress", self._progress_problem)
        readiness.add_probe("broker", self._broker_problem)
        readiness.add_liveness(name, self._stuck_problem)

    def lag_probe(self, settings: VitalsSettings) -> LagProbe:
        """The probe that measures this consumer's lag from its stored positions."""
        return LagProbe(
            settings,
            role=self.name,
            topics=[self.topic],
            positions=DatabasePositions(self._sessions, self._offsets, self.group_id),
            set_lag=metrics.lag_gauge(self.name),
        )

    async def run(self) -> None:
        """Consume until cancelled, restarting after any failure with growing backoff."""
        while True:
            self._consumer = self._make_consumer()
            self._assignment_error = None
            delay = 0.0
            try:
                await self._start()
                await self._consume()
            except Exception as exc:
                metrics.CONSUMER_RESTARTS.labels(self.name).inc()
                delay = self._restarts.failed(exc)
            finally:
                self._epochs = {}
                self._next = {}
                self._handler.forget()
                await self._stop()
            # Out of the group while waiting, so its partitions can move meanwhile.
            await asyncio.sleep(delay)

    def _progressed(self) -> None:
        self._last_progress = time.monotonic()
        self._restarts.recovered()

    async def _start(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._readiness.report("consumer", "waiting for the broker")
        await start_with_retry(
            "kafka", consumer.start, self._readiness.reporter("kafka"), self._retry_max_s
        )
        self._readiness.report("kafka", None)
        consumer.subscribe(
            [self.topic], listener=RebalanceListener(self._on_assigned, self._on_revoked)
        )

    async def _stop(self) -> None:
        if self._consumer is not None:
            consumer, self._consumer = self._consumer, None
            try:
                await consumer.stop()
            except KafkaError as exc:
                log.warning("%s consumer did not stop cleanly: %s", self.name, exc)

    async def _consume(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        while True:
            wait_ms = 0 if self._periodic_pending else 500
            batch = await consumer.getmany(timeout_ms=wait_ms, max_records=self._max_records)
            if self._assignment_error is not None:
                # aiokafka only logs a failing listener; consuming from Kafka's own
                # positions instead of the database's would double-count.
                raise self._assignment_error
            async with self._batch_lock:
                owned = consumer.assignment()
                records = self._unapplied(batch, owned)
                positions = await self._flush_isolating(records) if records else {}
                if self._periodic is not None and (self._periodic_pending or self._periodic.due()):
                    self._periodic_pending = await self._run_periodic(self._periodic, owned)
            if self._records_waiting(consumer) == 0:
                self._last_progress = time.monotonic()
            await self._handler.after_commit()
            if positions:
                await self._commit_to_kafka(consumer, positions)

    def _unapplied(
        self, batch: dict[TopicPartition, Records], owned: set[TopicPartition]
    ) -> Records:
        """Records of partitions still ours, from the database's position on."""
        kept: Records = []
        for tp, fetched in batch.items():
            if tp not in owned or tp not in self._next:
                continue  # revoked, or assigned and not yet positioned from the database
            fresh = [r for r in fetched if r.offset >= self._next[tp]]
            if len(fresh) < len(fetched):
                log.info(
                    "%s skipped %d records of %s/%d fetched before its position was restored",
                    self.name,
                    len(fetched) - len(fresh),
                    tp.topic,
                    tp.partition,
                )
            kept.extend(fresh)
        return kept

    async def _flush_isolating(
        self, records: Records, *, searching: bool = False
    ) -> dict[TopicPartition, int]:
        """Flush ``records``; if that fails because of a record, find it and reject it.

        Halving keeps the cost of one bad record in a batch of n at about 2 log2(n)
        transactions. Each half is applied from the database's state (memory is
        dropped after a failure) and commits with its own offsets, so a crash in the
        middle replays only what was not committed, exactly as for whole batches."""
        try:
            return await self._flush(records)
        except Exception as exc:
            if is_transient(exc):
                raise
            self._handler.forget()  # the failed apply may have changed what memory holds
            if len(records) == 1:
                return await self._reject(records[0], exc)
            if not searching:
                log.warning(
                    "%s batch of %d records failed (%s); applying it in halves to find the record",
                    self.name,
                    len(records),
                    describe(exc),
                )
            middle = len(records) // 2
            positions = await self._flush_isolating(records[:middle], searching=True)
            positions.update(await self._flush_isolating(records[middle:], searching=True))
            return positions

    async def _reject(self, record: ConsumerRecord, exc: Exception) -> dict[TopicPartition, int]:
        """Dead-letter ``record`` and move its partition past it, in one transaction."""
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.error("%s dead-lettered the record at %s", self.name, where, exc_info=exc)
        positions = {TopicPartition(record.topic, record.partition): record.offset + 1}
        async with self._sessions() as session, session.begin():
            await self._handler.reject(session, record, describe(exc))
            epochs = self._epochs if self._fenced else None
            await save_offsets(session, self._offsets, self.group_id, positions, epochs)
        self._next.update(positions)
        self._progressed()
        metrics.CONSUMER_RECORDS_REJECTED.labels(self.name).inc()
        return positions

    async def _flush(self, records: Records) -> dict[TopicPartition, int]:
        """Apply ``records`` and store the next offsets in one transaction."""
        started = time.perf_counter()
        positions: dict[TopicPartition, int] = {}
        for record in records:
            positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
        async with self._sessions() as session, session.begin():
            await self._handler.apply(session, records)
            epochs = self._epochs if self._fenced else None
            await save_offsets(session, self._offsets, self.group_id, positions, epochs)
        self._next.update(positions)
        self._progressed()
        metrics.CONSUMER_RECORDS.labels(self.name).inc(len(records))
        metrics.CONSUMER_BATCH_SECONDS.labels(self.name).observe(time.perf_counter() - started)
        return positions

    def _records_waiting(self, consumer: AIOKafkaConsumer) -> int:
        """Records behind the end of the owned partitions, as far as the last fetch
        knows. The lag gauges come from :mod:`shared.lag`, which goes on measuring
        when this loop does not."""
        total = 0
        for tp, position in self._next.items():
            highwater = consumer.highwater(tp)
            if highwater is not None:  # None: nothing fetched yet, the end is not known
                total += max(highwater - position, 0)
        return total

    def _stalled_past(self, limit_s: float) -> tuple[float, int] | None:
        """How long the consumer has waited without progress and how many records wait,
        once that is ``limit_s`` or more; None while it is caught up or moving."""
        consumer = self._consumer
        if consumer is None:
            return None
        idle = time.monotonic() - self._last_progress
        if idle < limit_s:
            return None
        behind = self._records_waiting(consumer)
        return (idle, behind) if behind else None

    async def _progress_problem(self) -> str | None:
        if (stalled := self._stalled_past(self._stalled_after_s)) is None:
            return None
        return f"no progress for {stalled[0]:.0f}s with {stalled[1]} records waiting"

    async def _broker_problem(self) -> str | None:
        """Whether the broker has stopped answering fetches. The client retries by
        itself and nothing falls behind while it is away, so without this check an
        outage would look healthy. Not judged while a batch is applied: partitions
        whose records wait to be applied are not fetched meanwhile."""
        consumer = self._consumer
        if consumer is None or self._batch_lock.locked():
            return None
        owned = consumer.assignment()
        polls = [consumer.last_poll_timestamp(tp) for tp in owned]
        answered = [p for p in polls if p is not None]
        if not answered:
            return None  # nothing fetched yet
        silent_s = time.time() - max(answered) / 1000
        if silent_s < self._broker_silent_after_s:
            return None
        return f"no answer from the broker for {silent_s:.0f}s"

    def _stuck_problem(self) -> str | None:
        if (stalled := self._stalled_past(self._stuck_after_s)) is None:
            return None
        return f"{self.name} consumer made no progress for {stalled[0]:.0f}s: restart the process"

    async def _run_periodic(self, periodic: PeriodicWork, owned: set[TopicPartition]) -> bool:
        claimed = {tp for tp in owned if tp in self._epochs} if self._fenced else set(owned)
        async with self._sessions() as session, session.begin():
            more = await periodic.run_chunk(session, claimed)
            if self._fenced:
                await check_epochs(
                    session, self._offsets, self.group_id, {tp: self._epochs[tp] for tp in claimed}
                )
        return more

    async def _commit_to_kafka(
        self, consumer: AIOKafkaConsumer, positions: dict[TopicPartition, int]
    ) -> None:
        # Outside the batch lock: a commit may wait for a rebalance, and the
        # rebalance listener waits for that lock.
        try:
            await consumer.commit(positions)
        except KafkaError as exc:  # informational only: the database holds the truth
            log.info("%s kafka commit skipped: %s", self.name, exc)

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._batch_lock:
            try:
                async with self._sessions() as session, session.begin():
                    if self._fenced:
                        self._epochs = await claim_partitions(
                            session, self._offsets, self.group_id, assigned
                        )
                    stored = await load_offsets(session, self._offsets, self.group_id, assigned)
            except (SQLAlchemyError, OSError) as exc:
                self._assignment_error = exc
                return
            self._handler.forget()  # read back what others wrote while we did not own it
            self._last_progress = time.monotonic()
            for tp in assigned:
                if tp in stored:
                    consumer.seek(tp, stored[tp])
                else:
                    await consumer.seek_to_beginning(tp)
                self._next[tp] = stored.get(tp, NOT_CONSUMED)
        partitions = sorted(tp.partition for tp in assigned)
        log.info("%s assigned partitions %s", self.name, partitions)
        metrics.CONSUMER_ASSIGNED.labels(self.name).set(len(assigned))
        self._readiness.report("consumer", None)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waiting for the batch in flight means its offsets are flushed before
        # another replica can take the partitions over.
        async with self._batch_lock:
            self._handler.forget()
            self._epochs = {tp: e for tp, e in self._epochs.items() if tp not in revoked}
            self._next = {tp: n for tp, n in self._next.items() if tp not in revoked}
            log.info("%s revoked partitions %s", self.name, sorted(tp.partition for tp in revoked))
