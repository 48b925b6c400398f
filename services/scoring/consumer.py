"""Scoring's batch step: events -> account state -> score changes, then publish them."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import orjson
from aiokafka import AIOKafkaProducer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, repository
from services.scoring.domain import AccountState, apply_event, rescore
from services.scoring.settings import ScoringSettings
from shared.consumer import Records
from shared.db import SessionFactory
from shared.events import Event
from shared.kafka import send_all

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
PUBLISH_BATCH = 500
IDLE_OUTBOX_CHECK_S = 5.0


class ScoringHandler:
    def __init__(
        self,
        settings: ScoringSettings,
        sessions: SessionFactory,
        producer: AIOKafkaProducer,
        clock: Clock,
    ) -> None:
        self._settings = settings
        self._sessions = sessions
        self._producer = producer
        self._clock = clock
        self._outbox_dirty = True
        self._outbox_checked = 0.0

    async def apply(self, session: AsyncSession, records: Records) -> None:
        by_account: dict[str, list[Event]] = defaultdict(list)
        for record in records:
            event = _decode(record.value, f"{record.topic}/{record.partition}@{record.offset}")
            if event is not None:
                by_account[event.account_id].append(event)
        rows = await repository.load_states(session, by_account)
        now = self._clock()
        for account_id, events in by_account.items():
            row = rows.get(account_id)
            state = (
                AccountState.model_validate(row.state)
                if row
                else AccountState(account_id=account_id)
            )
            applied = sum(apply_event(state, event) for event in events)
            metrics.EVENTS_APPLIED.inc(applied)
            metrics.EVENTS_DUPLICATE.inc(len(events) - applied)
            change = rescore(state, now)
            repository.save_state(session, row, state, now)
            if change is not None:
                repository.add_history(session, change)
                metrics.SCORE_CHANGES.labels(change.band.value).inc()
                self._outbox_dirty = True

    async def after_commit(self) -> None:
        """Send committed score changes that are not on the scores topic yet."""
        idle_check_due = time.monotonic() - self._outbox_checked > IDLE_OUTBOX_CHECK_S
        if not (self._outbox_dirty or idle_check_due):
            return
        self._outbox_checked = time.monotonic()
        while await self._publish_some():
            pass
        self._outbox_dirty = False

    async def _publish_some(self) -> bool:
        async with self._sessions() as session, session.begin():
            pending = await repository.unpublished_changes(session, PUBLISH_BATCH)
            if not pending:
                return False
            records = [(row.account_id.encode(), orjson.dumps(row.message)) for row in pending]
            await send_all(self._producer, self._settings.scores_topic, records)
            await repository.mark_published(session, [row.id for row in pending], self._clock())
        metrics.SCORES_PUBLISHED.inc(len(pending))
        return len(pending) == PUBLISH_BATCH


def _decode(value: bytes | None, where: str) -> Event | None:
    try:
        return Event.from_bytes(value or b"")
    except ValidationError as exc:
        # The topic is written by ingest only; a bad record means a bug or a stray
        # producer. It is counted and logged with its position, not retried forever.
        metrics.EVENTS_UNREADABLE.inc()
        log.error("unreadable event at %s skipped: %s", where, exc.errors(include_url=False))
        return None
