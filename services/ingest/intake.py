"""The one path every input takes after parsing: dedupe, publish, dead-letter, count.

HTTP routes and the raw-topic consumer hand their items here. Events and dead
letters are published together and the call returns only after the broker
acknowledged both (acks=all); when it does not, the claimed event ids are released
so that the sender's retry is not mistaken for a repeat.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import metrics
from services.ingest.database import Statements
from services.ingest.dedupe import Claim, Deduplicator
from services.ingest.domain import Held, Item, Rejection
from services.ingest.publisher import EventPublisher, Unacknowledged
from shared.clock import Clock, utc_now
from shared.dlq import DeadLetter
from shared.events import Event

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Origin:
    """Where an item came from, as its dead letter names it."""

    source: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None

    @classmethod
    def http(cls, path: str) -> Origin:
        return cls(f"http:{path}")

    @classmethod
    def kafka(cls, topic: str, partition: int, offset: int) -> Origin:
        return cls(f"kafka:{topic}/{partition}@{offset}", topic, partition, offset)


@dataclass
class Submitted:
    """What became of each item, by its index in the request."""

    accepted: dict[int, str] = field(default_factory=dict)
    duplicates: dict[int, str] = field(default_factory=dict)
    rejected: dict[int, Rejection] = field(default_factory=dict)
    held: dict[int, Held] = field(default_factory=dict)

    def within(self, count: int) -> Submitted:
        """The outcome of the first ``count`` items only (a request's own)."""
        return Submitted(
            {i: v for i, v in self.accepted.items() if i < count},
            {i: v for i, v in self.duplicates.items() if i < count},
            {i: v for i, v in self.rejected.items() if i < count},
            {i: v for i, v in self.held.items() if i < count},
        )


@dataclass(frozen=True)
class Plan:
    """Items split by what happens to them; pure, so a request's repeats are seen here."""

    unique: dict[int, Event]
    repeated: dict[int, str]
    rejected: dict[int, Rejection]
    held: dict[int, Held] = field(default_factory=dict)


def plan(items: Sequence[Item]) -> Plan:
    unique: dict[int, Event] = {}
    repeated: dict[int, str] = {}
    rejected: dict[int, Rejection] = {}
    held: dict[int, Held] = {}
    seen: set[str] = set()
    for index, item in enumerate(items):
        if isinstance(item, Rejection):
            rejected[index] = item
        elif isinstance(item, Held):
            held[index] = item
        elif item.event_id in seen:
            repeated[index] = item.event_id
        else:
            seen.add(item.event_id)
            unique[index] = item
    return Plan(unique, repeated, rejected, held)


def dead_letter(rejection: Rejection, origin: Origin, at: datetime, processor: str) -> DeadLetter:
    letter = DeadLetter.of(
        rejection.original,
        reason=rejection.reason.value,
        message=rejection.message,
        source=origin.source,
        rejected_at=at,
        processor=processor,
        topic=origin.topic,
        partition=origin.partition,
        offset=origin.offset,
        account_id=rejection.account_id,
        event_id=rejection.event_id,
    )
    if rejection.size is not None and rejection.size > letter.original_size:
        return letter.model_copy(update={"original_size": rejection.size, "truncated": True})
    return letter


@dataclass(frozen=True)
class Prepared:
    """Items a source decided in the transaction that claims their ids, and what it
    runs once they are stored, in the transaction that confirms them."""

    items: list[tuple[Item, Origin]]
    after_stored: Statements | None = None


Prepare = Callable[[AsyncSession], Awaitable[Prepared]]


class Intake:
    def __init__(
        self,
        publisher: EventPublisher,
        deduplicator: Deduplicator,
        processor: str,
        clock: Clock = utc_now,
    ) -> None:
        self._publisher = publisher
        self._dedupe = deduplicator
        self._processor = processor
        self._clock = clock
        self._settling: set[asyncio.Task[None]] = set()

    async def submit(self, items: Sequence[tuple[Item, Origin]], channel: str) -> Submitted:
        """Publish the new events and dead-letter the rejections; raise when not stored.

        Raises ``BrokerUnavailable`` or ``DatabaseUnavailable`` (nothing may be assumed
        stored: retry with the same ids) and ``InFlight`` (another request holds one of
        these ids right now: retry shortly).
        """
        split = _received(items, channel)
        claim = await self._dedupe.claim(_event_ids(split))
        return await self._publish(items, split, claim, channel)

    async def submit_prepared(self, prepare: Prepare, channel: str) -> Submitted:
        """As ``submit``, for the items a source decides against what it keeps in the
        ingest database (Segment's users and waiting calls): ``prepare`` runs in the
        transaction that claims their event ids, and its ``after_stored`` in the one that
        confirms them, so that all of it costs two transactions."""
        async with self._dedupe.claiming() as claimer:
            prepared = await prepare(claimer.session)
            split = _received(prepared.items, channel)
            claim = await claimer.claim(_event_ids(split))
        return await self._publish(prepared.items, split, claim, channel, prepared.after_stored)

    async def _publish(
        self,
        items: Sequence[tuple[Item, Origin]],
        split: Plan,
        claim: Claim,
        channel: str,
        after_stored: Statements | None = None,
    ) -> Submitted:
        fresh = {i: e for i, e in split.unique.items() if e.event_id in claim.new}
        now = self._clock()
        letters = [
            (rejection.reason, dead_letter(rejection, items[i][1], now, self._processor))
            for i, rejection in split.rejected.items()
        ]
        try:
            await self._publisher.publish(list(fresh.values()), [letter for _, letter in letters])
        except Unacknowledged as exc:
            # Some events may still be stored: keep their ids claimed (a retry meanwhile
            # is told to wait) until the producer says, then confirm or release each.
            self._settle_later(claim.new, exc.acknowledgements)
            raise
        except BaseException:
            await self._dedupe.release(claim.new)
            raise
        await self._dedupe.confirm(claim.new, after_stored)
        outcome = Submitted(
            accepted={i: e.event_id for i, e in fresh.items()},
            duplicates={
                **{i: e.event_id for i, e in split.unique.items() if i not in fresh},
                **split.repeated,
            },
            rejected=split.rejected,
            held=split.held,
        )
        _count(outcome, channel, [reason for reason, _ in letters])
        return outcome

    def _settle_later(
        self, claimed: Collection[str], acknowledgements: Mapping[str, asyncio.Future[object]]
    ) -> None:
        task = asyncio.create_task(self._settle(claimed, acknowledgements), name="ingest-settle")
        self._settling.add(task)
        task.add_done_callback(self._settling.discard)

    async def _settle(
        self, claimed: Collection[str], acknowledgements: Mapping[str, asyncio.Future[object]]
    ) -> None:
        ids = [i for i in claimed if i in acknowledgements]
        outcomes = await asyncio.gather(*(acknowledgements[i] for i in ids), return_exceptions=True)
        stored = {
            i
            for i, outcome in zip(ids, outcomes, strict=True)
            if not isinstance(outcome, BaseException)
        }
        if stored:
            log.warning("%d event(s) of a request answered 503 were stored late", len(stored))
            await self._dedupe.confirm(stored)
        await self._dedupe.release(set(claimed) - stored)


def _received(items: Sequence[tuple[Item, Origin]], channel: str) -> Plan:
    metrics.EVENTS_RECEIVED.labels(channel).inc(len(items))
    return plan([item for item, _ in items])


def _event_ids(split: Plan) -> list[str]:
    return [event.event_id for event in split.unique.values()]


def _count(outcome: Submitted, channel: str, reasons: Sequence[object]) -> None:
    metrics.EVENTS_ACCEPTED.labels(channel).inc(len(outcome.accepted))
    if outcome.accepted:
        metrics.LAST_ACCEPTED.labels(channel).set_to_current_time()
    if outcome.duplicates:
        metrics.DEDUPE_HITS.labels(channel).inc(len(outcome.duplicates))
    for reason in reasons:
        metrics.EVENTS_REJECTED.labels(channel, str(reason)).inc()
        metrics.DEAD_LETTERS.labels(str(reason)).inc()
