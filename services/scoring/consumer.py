"""Scoring's batch step: events -> account state -> score changes, then publish them.

Everything a batch produces (states, history rows that double as the scores
outbox, dead letters) is written in the batch's transaction; ``after_commit``
then sends what is not on its topic yet.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal

from aiokafka import AIOKafkaProducer, ConsumerRecord
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, repository
from services.scoring.domain import (
    AccountState,
    Outcome,
    Override,
    Portfolio,
    apply_events,
    rescore,
    scorecard_for,
)
from services.scoring.models import AccountOverride, DeadLetterOutbox
from services.scoring.scorecard import ScorecardSet
from services.scoring.settings import ScoringSettings
from services.scoring.state_cache import StateCache
from shared import dead_letter_outbox
from shared.clock import Clock
from shared.consumer import Records
from shared.db import SessionFactory
from shared.dlq import DeadLetter, decode_record, processor_name
from shared.events import Event
from shared.kafka import send_all
from shared.scores import ScoreChange, Trigger

log = logging.getLogger(__name__)

PUBLISH_BATCH = 2_000
IDLE_OUTBOX_CHECK_S = 5.0
YIELD_EVERY = 50


@dataclass
class AccountWork:
    events: list[tuple[Event, ConsumerRecord]] = field(default_factory=list)
    partition: int | None = None


class AccountScorer:
    """Loads accounts, folds events in, scores them and stages every write in the session."""

    def __init__(self, settings: ScoringSettings, scorecards: ScorecardSet, clock: Clock) -> None:
        self._settings = settings
        self._limits = settings.limits()
        self._scorecards = scorecards
        self._clock = clock
        self._processor = processor_name("scoring")
        self._cache = StateCache(settings.scoring_state_cache_accounts)
        self.portfolio: Portfolio | None = None

    async def refresh_portfolio(self, session: AsyncSession) -> None:
        self.portfolio = await repository.portfolio(session)

    async def process(
        self, session: AsyncSession, work: dict[str, AccountWork], trigger: Trigger
    ) -> int:
        """Apply and score every account in ``work``; returns how many score changes."""
        if self.portfolio is None:
            await self.refresh_portfolio(session)
        states = await self._states(session, work)
        overrides = await repository.unsettled_overrides(session, work)
        now = self._clock()
        writes: list[repository.StateWrite] = []
        changes: list[ScoreChange] = []
        lapsed: list[str] = []
        letters: list[DeadLetter] = []
        for done, account_id in enumerate(sorted(work), start=1):
            if done % YIELD_EVERY == 0:
                await asyncio.sleep(0)  # let heartbeats and API requests run
            events = work[account_id].events
            state = states.get(account_id)
            if state is None:
                if not events:
                    continue
                state = AccountState(account_id=account_id)
            applied = self._apply(state, events, now, letters)
            mine = overrides.get(account_id, [])
            if events and not applied and not any(o.pending for o in mine):
                continue  # only repeats or late events: nothing changed, the sweep ages it
            result = rescore(
                state,
                now,
                scorecard_for(state, self._scorecards),
                portfolio=self.portfolio,
                overrides=[_domain_override(o) for o in mine if _in_force(o)],
                trigger=Trigger.override if any(o.pending for o in mine) else trigger,
            )
            partition = work[account_id].partition
            write = repository.StateWrite(state, result.assessment, result.trend_7d, partition)
            writes.append(write)
            lapsed.extend(result.lapsed)
            if result.change is not None:
                changes.append(result.change)
                metrics.SCORE_CHANGES.labels(result.change.band.value).inc()
        await repository.save_states(session, writes, now)
        await repository.add_history(session, changes)
        for write in writes:
            self._cache.put(write.state)  # a new account's state is known from now on
        metrics.STATES_CACHED.set(len(self._cache))
        await dead_letter_outbox.add(session, DeadLetterOutbox, letters, now)
        if overrides:
            await repository.settle_overrides(session, overrides, lapsed, now)
            metrics.OVERRIDES_LAPSED.inc(len(lapsed))
        return len(changes)

    async def _states(
        self, session: AsyncSession, account_ids: Iterable[str]
    ) -> dict[str, AccountState]:
        """The states of those accounts that exist: from memory, else from the database."""
        states: dict[str, AccountState] = {}
        missing: list[str] = []
        for account_id in account_ids:
            state = self._cache.get(account_id)
            if state is None:
                missing.append(account_id)
            else:
                states[account_id] = state
        if missing:
            loaded = await repository.load_states(session, missing)
            metrics.STATES_LOADED.inc(len(loaded))
            for state in loaded.values():
                self._cache.put(state)
            states.update(loaded)
        return states

    def forget(self) -> None:
        """Drop every state held in memory: see ``state_cache``."""
        self._cache.clear()
        metrics.STATES_CACHED.set(0)

    def _apply(
        self,
        state: AccountState,
        events: list[tuple[Event, ConsumerRecord]],
        now: datetime,
        letters: list[DeadLetter],
    ) -> int:
        """Fold ``events`` in, adding late ones to ``letters``; returns how many applied."""
        if not events:
            return 0
        outcomes = apply_events(state, (event for event, _ in events), self._limits)
        applied = sum(1 for o in outcomes if o is Outcome.applied)
        metrics.EVENTS_APPLIED.inc(applied)
        metrics.EVENTS_DUPLICATE.inc(sum(1 for o in outcomes if o is Outcome.duplicate))
        for (event, record), outcome in zip(events, outcomes, strict=True):
            if outcome is Outcome.too_late:
                metrics.EVENTS_TOO_LATE.inc()
                message = (
                    f"occurred_at {event.occurred_at.isoformat()} is more than "
                    f"{self._settings.scoring_lateness_days:g} days behind the account's "
                    f"latest event time {state.watermark.isoformat() if state.watermark else ''}"
                )
                letters.append(self.dead_letter(record, "too_late", message, now, event))
        return applied

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


def _in_force(row: AccountOverride) -> bool:
    return row.lifted_at is None and row.lapsed_at is None


def _domain_override(row: AccountOverride) -> Override:
    field_name: Literal["band", "tier"] = "band" if row.field == "band" else "tier"
    return Override(id=row.id, field=field_name, value=row.value, expires_at=row.expires_at)


class ScoringHandler:
    def __init__(
        self,
        settings: ScoringSettings,
        sessions: SessionFactory,
        producer: AIOKafkaProducer,
        scorer: AccountScorer,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._producer = producer
        self._scorer = scorer
        self._clock = clock
        self._outbox_dirty = True
        self._outbox_checked = 0.0

    async def apply(self, session: AsyncSession, records: Records) -> None:
        work: dict[str, AccountWork] = defaultdict(AccountWork)
        now = self._clock()
        unreadable: list[DeadLetter] = []
        for record in records:
            event = _decode(record)
            if isinstance(event, str):
                letter = self._scorer.dead_letter(record, "unreadable_event", event, now)
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
        while await self._publish_scores():
            pass
        while await self._publish_dead_letters():
            pass
        self._outbox_dirty = False

    async def _publish_scores(self) -> bool:
        async with self._sessions() as session, session.begin():
            pending = await repository.unpublished_changes(session, PUBLISH_BATCH)
            if not pending:
                return False
            records = [(key, message) for _, key, message in pending]
            await send_all(self._producer, self._settings.scores_topic, records)
            ids = [row_id for row_id, _, _ in pending]
            await repository.mark_published(session, ids, self._clock())
        metrics.SCORES_PUBLISHED.inc(len(pending))
        return len(pending) == PUBLISH_BATCH

    async def _publish_dead_letters(self) -> bool:
        return await dead_letter_outbox.publish_pending(
            self._sessions,
            DeadLetterOutbox,
            self._producer,
            self._settings.dlq_topic,
            self._clock(),
            PUBLISH_BATCH,
            metrics.DEAD_LETTERS_PUBLISHED,
        )


def _decode(record: ConsumerRecord) -> Event | str:
    return decode_record(record, Event.from_bytes, "event", metrics.EVENTS_UNREADABLE)


def work_for(account_ids: Iterable[str]) -> dict[str, AccountWork]:
    """Work without events: score these accounts at the current time."""
    return {account_id: AccountWork() for account_id in account_ids}
