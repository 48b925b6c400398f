"""Scoring's batch step: events -> account state -> score changes, then publish them.

Everything a batch produces (states, history rows that double as the scores
outbox, dead letters) is written in the batch's transaction; ``after_commit``
then sends what is not on its topic yet.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import datetime

from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, repository
from services.scoring.domain import AccountState
from services.scoring.models import DeadLetterOutbox
from services.scoring.scorecard import ScorecardSet
from services.scoring.service import AccountWork, Scoring
from services.scoring.settings import ScoringSettings
from services.scoring.store import Kept, PostgresScoringStore
from shared import dead_letter_outbox
from shared.clock import Clock
from shared.consumer import Records
from shared.db import SessionFactory
from shared.dlq import DeadLetter, InvalidRecord, decode_record, processor_name
from shared.events import Event
from shared.health import Readiness
from shared.kafka import TopicLimits
from shared.outbox import OutboxRecord, OutboxRelay, Relaying, drain_all
from shared.scores import Trigger

log = logging.getLogger(__name__)

PUBLISH_BATCH = 2_000
IDLE_OUTBOX_CHECK_S = 5.0


class AccountScorer:
    """Runs ``service.Scoring`` in the batch's session: records its metrics and stages
    a dead letter for every event too late to fold."""

    def __init__(self, settings: ScoringSettings, scorecards: ScorecardSet, clock: Clock) -> None:
        self._settings = settings
        self._scoring = Scoring(scorecards, settings.limits())
        self._clock = clock
        self._processor = processor_name("scoring")
        self._kept = Kept(settings.scoring_state_cache_accounts)

    async def refresh_portfolio(self, session: AsyncSession) -> None:
        await PostgresScoringStore(session, self._kept).refresh_portfolio()

    async def process(
        self,
        session: AsyncSession,
        work: Mapping[str, AccountWork[ConsumerRecord]],
        trigger: Trigger,
    ) -> int:
        """Apply and score every account in ``work``; returns how many score changes."""
        now = self._clock()
        store = PostgresScoringStore(session, self._kept)
        processed = await self._scoring.process(store, work, now, trigger)
        folded, scored = processed.folded, processed.scored
        metrics.EVENTS_APPLIED.inc(sum(folded.applied.values()))
        metrics.EVENTS_DUPLICATE.inc(folded.duplicates)
        metrics.EVENTS_TOO_LATE.inc(len(folded.late))
        for change in scored.changes:
            metrics.SCORE_CHANGES.labels(change.band.value).inc()
        metrics.OVERRIDES_LAPSED.inc(len(scored.lapsed))
        letters = [
            self._too_late(event, record, state, now) for event, record, state in folded.late
        ]
        await dead_letter_outbox.add(session, DeadLetterOutbox, letters, now)
        return len(scored.changes)

    def forget(self) -> None:
        self._kept.forget()

    def _too_late(
        self, event: Event, record: ConsumerRecord, state: AccountState, now: datetime
    ) -> DeadLetter:
        message = (
            f"occurred_at {event.occurred_at.isoformat()} is more than "
            f"{self._settings.scoring_lateness_days:g} days behind the account's "
            f"latest event time {state.watermark.isoformat() if state.watermark else ''}"
        )
        return self.dead_letter(record, "too_late", message, now, event)

    def dead_letter(
        self,
        record: ConsumerRecord,
        reason: str,
        message: str,
        now: datetime,
        event: Event | None = None,
    ) -> DeadLetter:
        return DeadLetter.of_record(
            record,
            reason=reason,
            message=message,
            rejected_at=now,
            processor=self._processor,
            account_id=event.account_id if event else None,
            event_id=event.event_id if event else None,
        )


class ScoringHandler:
    def __init__(
        self,
        settings: ScoringSettings,
        sessions: SessionFactory,
        producer: AIOKafkaProducer,
        scorer: AccountScorer,
        clock: Clock,
        readiness: Readiness | None = None,
    ) -> None:
        self._producer = producer
        self._scorer = scorer
        self._clock = clock
        self._outbox_dirty = True
        self._outbox_checked = 0.0
        self._relays = _relays(settings, sessions, clock, readiness)

    async def apply(self, session: AsyncSession, records: Records) -> None:
        work: dict[str, AccountWork[ConsumerRecord]] = defaultdict(AccountWork)
        now = self._clock()
        unreadable: list[DeadLetter] = []
        for record in records:
            try:
                event = _decode(record)
            except InvalidRecord as exc:
                letter = self._scorer.dead_letter(record, "unreadable_event", exc.problem, now)
                unreadable.append(letter)
                continue
            item = work[event.account_id]
            item.events.append((event, record))
            item.partition = record.partition
        await dead_letter_outbox.add(session, DeadLetterOutbox, unreadable, now)
        await self._scorer.process(session, work, Trigger.events)
        self._outbox_dirty = True

    async def reject(self, session: AsyncSession, record: ConsumerRecord, problem: str) -> None:
        """A record whose handling failed: dead-lettered, so its partition moves on."""
        now = self._clock()
        message = f"scoring failed on this event: {problem}"
        letter = self._scorer.dead_letter(record, "processing_failed", message, now)
        await dead_letter_outbox.add(session, DeadLetterOutbox, [letter], now)
        self._outbox_dirty = True

    def mark_dirty(self) -> None:
        self._outbox_dirty = True

    def forget(self) -> None:
        self._scorer.forget()

    async def after_commit(self) -> None:
        """Send committed score changes and dead letters that are not on their topic yet."""
        idle_check_due = time.monotonic() - self._outbox_checked > IDLE_OUTBOX_CHECK_S
        if not (self._outbox_dirty or idle_check_due):
            return
        self._outbox_checked = time.monotonic()
        await drain_all(self._relays, self._producer)
        self._outbox_dirty = False


def _relays(
    settings: ScoringSettings,
    sessions: SessionFactory,
    clock: Clock,
    readiness: Readiness | None,
) -> tuple[OutboxRelay, OutboxRelay]:
    """Score changes, then dead letters (a dead letter may come of a refused change)."""
    return dead_letter_outbox.relays(
        "scoring",
        ("scores", repository.ScoresOutbox(), settings.scores_topic, _count_scores),
        DeadLetterOutbox,
        settings.dlq_topic,
        metrics.DEAD_LETTERS_PUBLISHED,
        Relaying(
            sessions,
            clock,
            PUBLISH_BATCH,
            TopicLimits.from_broker(settings),
            readiness,
            settings.publisher_stuck_after_s,
        ),
    )


def _count_scores(sent: Sequence[OutboxRecord]) -> None:
    metrics.SCORES_PUBLISHED.inc(len(sent))


def _decode(record: ConsumerRecord) -> Event:
    return decode_record(record, Event.from_bytes, "event", metrics.EVENTS_UNREADABLE)
