"""The consume spine: every Kafka consumer in Vitals is a handler on it.

A batch from ``getmany`` goes through named steps: *apply* (the handler's effects,
written in the commit policy's unit), *store* (the batch's next offsets, in the same
unit), *publish* (the handler's ``after_commit``: what the batch produced, sent once it
is stored), *commit* (the policy's Kafka commit). Two values say how:

- the **commit policy** (``shared.commit``): offsets in the database with the batch's
  effects, fenced or not (scoring, alerts), or committed to Kafka after the broker
  acknowledged what the batch published (the raw intake);
- the **isolation policy**: how a batch that fails because of a record is searched for
  it (:class:`Halving`, about 2 log2(n) units for one bad record in n, or
  :class:`OneAtATime`). The record found is handed to the handler's ``reject`` (a dead
  letter with the error) in a unit that also moves its partition past it.

A *transient* failure (``shared.faults``: the broker or the database away, a lost claim)
says nothing about the records: the consumer restarts with growing backoff from the
stored positions. A handler's :class:`Halt` is a designed stop: consuming ends, the
reason stays on ``/readyz``, until an operator restarts the process. Optional periodic
work (a sweep) runs in bounded chunks between batches, under the same lock and the same
claims. ``/readyz`` says when the consumer restarts or makes no progress while records
wait; ``/healthz`` fails when it has been stuck so long that only a restart will help.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from shared import metrics
from shared.commit import CommitPolicy, Positions, Unit
from shared.errors import describe
from shared.faults import Restarts, is_transient
from shared.health import Readiness
from shared.kafka import RebalanceListener, start_with_retry
from shared.lag import LagProbe
from shared.settings import VitalsSettings

log = logging.getLogger(__name__)

Records = list[ConsumerRecord]
UnitIn = TypeVar("UnitIn", contravariant=True)


class Halt(Exception):
    """A handler's designed stop: consuming ends until an operator restarts the process
    (e.g. almost every raw record rejected: a producer upstream is broken)."""


class BatchHandler(Protocol[UnitIn]):
    """What a service plugs into the spine; ``apply`` does no I/O outside ``unit`` but
    what its commit policy expects (the raw intake publishes, then commits to Kafka)."""

    async def apply(self, unit: UnitIn, records: Records) -> None: ...

    async def reject(self, unit: UnitIn, record: ConsumerRecord, problem: str) -> None:
        """Dead-letter ``record``, whose handling failed with ``problem``."""

    async def after_commit(self) -> None:
        """Publish what the stored batch produced (may raise BrokerUnavailable)."""

    def forget(self) -> None:
        """Drop whatever is kept in memory between batches: partitions moved, or a batch
        may not have been stored."""


class PeriodicWork(Protocol[UnitIn]):
    """Work a service does besides batches, e.g. re-scoring every account hourly."""

    def due(self) -> bool:
        """Whether a chunk should run now (cheap; no I/O)."""

    async def run_chunk(self, unit: UnitIn, owned: set[TopicPartition]) -> bool:
        """Do one bounded chunk for the ``owned`` partitions; True while more is pending."""


@dataclass(frozen=True)
class Halving:
    """Search a failed batch by halves: cheap for one bad record in a large batch."""

    def split(self, records: Records) -> list[Records]:
        middle = len(records) // 2
        return [records[:middle], records[middle:]]


@dataclass(frozen=True)
class OneAtATime:
    """Apply a failed batch record by record: for effects that are not one transaction."""

    def split(self, records: Records) -> list[Records]:
        return [[record] for record in records]


Isolation = Halving | OneAtATime


@dataclass(frozen=True)
class Watch:
    """What the spine reports, under which names: its state (``state``: restarting,
    stopped; ``on_state`` sees it too), connecting to the broker (``broker``; None: not
    reported), and, with ``stalls``, the ``progress`` and ``broker`` probes and a
    liveness check named after the consumer."""

    state: str = "consumer"
    broker: str | None = "kafka"
    stalls: bool = True
    on_state: Callable[[str | None], None] | None = None


class Consumer(Generic[Unit]):
    """The one long-running consumer; see the module's doc."""

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[str],
        group_id: str,
        make_consumer: Callable[[], AIOKafkaConsumer],
        commit: CommitPolicy[Unit],
        handler: BatchHandler[Unit],
        readiness: Readiness,
        isolation: Isolation = Halving(),
        watch: Watch = Watch(),
        prepare: Callable[[], Awaitable[None]] | None = None,
        max_records: int = 500,
        retry_max_s: float = 30.0,
        periodic: PeriodicWork[Unit] | None = None,
        stalled_after_s: float = 120.0,
        stuck_after_s: float = 600.0,
        broker_silent_after_s: float = 30.0,
    ) -> None:
        self.name = name
        self.topics = tuple(topics)
        self.group_id = group_id
        self.failure: str | None = None
        """Why the consumer halted, if it did."""
        self._make_consumer = make_consumer
        self._commit = commit
        self._handler = handler
        self._readiness = readiness
        self._isolation = isolation
        self._watch = watch
        self._prepare = prepare
        self._max_records = max_records
        self._retry_max_s = retry_max_s
        self._batch_lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._assignment_error: Exception | None = None
        self._periodic = periodic
        self._periodic_pending = False
        # Next offset to apply per partition, from the commit policy at assignment:
        # records below it were fetched from Kafka's (older) position before a seek landed.
        self._next: Positions = {}
        # Backoff grows across restarts until a batch is stored again: a database that
        # stays away is not met with a rejoin every half second.
        self._restarts = Restarts(log, f"{name} consumer", self._report, retry_max_s)
        self._stalled_after_s = stalled_after_s
        self._stuck_after_s = stuck_after_s
        self._last_progress = time.monotonic()
        self._broker_silent_after_s = broker_silent_after_s
        self._task: asyncio.Task[None] | None = None
        if watch.stalls:
            readiness.add_probe("progress", self._progress_problem)
            readiness.add_probe("broker", self._broker_problem)
            readiness.add_liveness(name, self._stuck_problem)

    @property
    def assigned(self) -> frozenset[TopicPartition]:
        """The partitions this replica reads now."""
        return frozenset(self._next)

    def lag_probe(self, settings: VitalsSettings) -> LagProbe:
        """The probe that measures this consumer's lag from its stored positions."""
        return LagProbe(
            settings,
            role=self.name,
            topics=list(self.topics),
            positions=self._commit.positions(self.group_id),
            set_lag=metrics.lag_gauge(self.name),
        )

    def start(self) -> None:
        """Run in a task of its own, until ``stop``."""
        self._report("starting")
        self._task = asyncio.create_task(self.run(), name=f"{self.name}-consumer")

    async def stop(self) -> None:
        """Let the batch in flight finish and be stored, then stop."""
        if self._task is None:
            return
        async with self._batch_lock:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def run(self) -> None:
        """Consume until cancelled or halted, restarting after any failure with growing
        backoff (a fault of ours must not end consuming for good: what was not stored
        comes again after the restart)."""
        while True:
            self._consumer = self._make_consumer()
            self._assignment_error = None
            delay = 0.0
            try:
                await self._start()
                await self._consume()
            except Halt as exc:
                self._halt(exc)
                return
            except Exception as exc:
                metrics.CONSUMER_RESTARTS.labels(self.name).inc()
                delay = self._restarts.failed(exc)
            finally:
                self._next = {}
                self._handler.forget()
                await self._stop()
            # Out of the group while waiting, so its partitions can move meanwhile.
            await asyncio.sleep(delay)

    def _report(self, problem: str | None) -> None:
        self._readiness.report(self._watch.state, problem)
        if self._watch.on_state is not None:
            self._watch.on_state(problem)

    def _halt(self, exc: Halt) -> None:
        self.failure = str(exc)
        self._report(f"stopped: {exc}")
        log.error("%s consumer stopped: %s", self.name, exc)

    def _progressed(self) -> None:
        self._last_progress = time.monotonic()
        self._restarts.recovered()

    async def _start(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        self._report("waiting for the broker")
        broker = self._readiness.reporter(self._watch.broker) if self._watch.broker else _ignore
        if self._prepare is not None:
            await start_with_retry("kafka", self._prepare, broker, self._retry_max_s)
        await start_with_retry("kafka", consumer.start, broker, self._retry_max_s)
        broker(None)
        listener = RebalanceListener(self._on_assigned, self._on_revoked)
        consumer.subscribe(list(self.topics), listener=listener)
        if not self._watch.stalls:
            self._report(None)  # no assignment to wait for: reported live once subscribed

    async def _stop(self) -> None:
        if self._consumer is None:
            return
        consumer, self._consumer = self._consumer, None
        try:
            await self._commit.stopping(consumer)
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
                # positions instead of the stored ones would double-count.
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
            # Outside the batch lock: a commit may wait for a rebalance, and the
            # rebalance listener waits for that lock.
            await self._commit.batch_done(consumer, positions)

    def _unapplied(
        self, batch: dict[TopicPartition, Records], owned: set[TopicPartition]
    ) -> Records:
        """Records of partitions still ours, from the stored position on."""
        kept: Records = []
        for tp, fetched in batch.items():
            if tp not in owned or tp not in self._next:
                continue  # revoked, or assigned and not yet positioned
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

    async def _flush_isolating(self, records: Records, *, searching: bool = False) -> Positions:
        """Flush ``records``; if that fails because of a record, find it and reject it.

        Each part is applied from the stored state (memory is dropped after a failure)
        and stored with its own offsets, so a crash in the middle replays only what was
        not stored, exactly as for whole batches."""
        try:
            return await self._flush(records)
        except Exception as exc:
            if is_transient(exc) or isinstance(exc, Halt):
                raise
            self._handler.forget()  # the failed apply may have changed what memory holds
            if len(records) == 1:
                return await self._reject(records[0], exc)
            if not searching:
                log.warning(
                    "%s batch of %d records failed (%s); applying it in parts to find the record",
                    self.name,
                    len(records),
                    describe(exc),
                )
            positions: Positions = {}
            for part in self._isolation.split(records):
                positions.update(await self._flush_isolating(part, searching=True))
            return positions

    async def _reject(self, record: ConsumerRecord, exc: Exception) -> Positions:
        """Dead-letter ``record`` and move its partition past it, in one unit."""
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.error("%s dead-lettered the record at %s", self.name, where, exc_info=exc)
        positions = {TopicPartition(record.topic, record.partition): record.offset + 1}
        async with self._commit.unit() as unit:
            await self._handler.reject(unit, record, describe(exc))
            await self._commit.store(unit, positions)
        self._next.update(positions)
        self._progressed()
        metrics.CONSUMER_RECORDS_REJECTED.labels(self.name).inc()
        return positions

    async def _flush(self, records: Records) -> Positions:
        """Apply ``records`` and store the next offsets in one unit."""
        started = time.perf_counter()
        positions: Positions = {}
        for record in records:
            positions[TopicPartition(record.topic, record.partition)] = record.offset + 1
        async with self._commit.unit() as unit:
            await self._handler.apply(unit, records)
            await self._commit.store(unit, positions)
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

    async def _run_periodic(self, periodic: PeriodicWork[Unit], owned: set[TopicPartition]) -> bool:
        claimed = self._commit.owned_for_work(owned)
        async with self._commit.unit() as unit:
            more = await periodic.run_chunk(unit, claimed)
            await self._commit.check_claims(unit, claimed)
        return more

    async def _on_assigned(self, assigned: set[TopicPartition]) -> None:
        consumer = self._consumer
        assert consumer is not None
        async with self._batch_lock:
            try:
                positions = await self._commit.assigned(consumer, assigned)
            except Exception as exc:  # raised by the loop: aiokafka would only log it
                self._assignment_error = exc
                return
            self._handler.forget()  # read back what others wrote while we did not own it
            self._last_progress = time.monotonic()
            self._next.update(positions)
        partitions = sorted(tp.partition for tp in assigned)
        log.info("%s assigned partitions %s", self.name, partitions)
        metrics.CONSUMER_ASSIGNED.labels(self.name).set(len(assigned))
        self._report(None)

    async def _on_revoked(self, revoked: set[TopicPartition]) -> None:
        # Waiting for the batch in flight means its offsets are stored before another
        # replica can take the partitions over.
        consumer = self._consumer
        async with self._batch_lock:
            self._handler.forget()
            if consumer is not None:
                await self._commit.revoked(consumer, revoked)
            self._next = {tp: n for tp, n in self._next.items() if tp not in revoked}
            log.info("%s revoked partitions %s", self.name, sorted(tp.partition for tp in revoked))


def _ignore(problem: str | None) -> None:
    """Connection problems are logged by ``start_with_retry`` already."""
