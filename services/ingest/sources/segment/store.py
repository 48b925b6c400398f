"""Segment's protocol on the ingest database (``service.SegmentStore``).

A unit of work (an HTTP request, a raw-topic batch) reads what its calls need at the
start of the transaction that claims its event ids and writes what they taught in
it; the calls it released are forgotten in the transaction that confirms the ids. A
sweep dead-letters the calls whose wait ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import metrics
from services.ingest.database import DatabaseUnavailable, Statements, transaction
from services.ingest.dedupe import InFlight
from services.ingest.intake import Intake, Origin
from services.ingest.sources.segment import mapping, repository, service
from services.ingest.sources.segment.service import Accepted, Grouped, Waited, WaitingCall
from shared.clock import Clock
from shared.db import SessionFactory
from shared.events import is_storable_id
from shared.kafka import BrokerUnavailable

log = logging.getLogger(__name__)

RELEASE_MAX = 1_000  # calls released by one unit of work; the rest come with the next
WAITING_CHECK_S = 60.0
WAITING_BATCH = 1_000
WAITING_ORIGIN = Origin("http:/v1/segment (waited for a group call)")


@dataclass(frozen=True)
class SegmentDatabase:
    """How long a call waits for its group call, and the clock of what is written."""

    wait: timedelta
    clock: Clock


@dataclass
class DatabaseSegmentStore:
    """A unit of work's share of Segment's tables, read when it begins and written when
    it ends (:func:`database_store`)."""

    database: SegmentDatabase
    known: dict[str, str]
    waiting: list[WaitingCall]
    """Calls waiting for the users of the unit's group calls, oldest first."""
    grouped: Grouped = field(default_factory=dict)
    held: list[WaitingCall] = field(default_factory=list)

    def accounts(self) -> Mapping[str, str]:
        return self.known

    def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        self.grouped.update((user, said) for user, said in grouped.items() if is_storable_id(user))

    def hold(self, calls: Sequence[WaitingCall]) -> None:
        self.held.extend(calls)

    def release(self, users: Collection[str], now: datetime) -> Waited:
        # Past their wait, calls not swept yet still go: the sweep takes what is left.
        return Waited([call for call in self.waiting if call.user_id in users])

    async def save(self, session: AsyncSession) -> None:
        if self.grouped:
            await repository.save_user_accounts(session, self.grouped, self.database.clock())
        if self.held:
            await repository.hold_calls(session, self.held, self.database.wait)
            metrics.SEGMENT_CALLS_WAITING.labels("held").inc(len(self.held))


@contextlib.asynccontextmanager
async def database_store(
    session: AsyncSession, messages: Sequence[object], database: SegmentDatabase
) -> AsyncIterator[DatabaseSegmentStore]:
    """The store of a unit of work whose calls are ``messages``, in ``session``'s
    transaction: what the calls need is read on entering, what they taught is written
    on leaving."""
    users = _storable(mapping.users_to_look_up(messages))
    grouping = _storable(mapping.users_grouping(messages))
    known = await repository.accounts_of_users(session, users)
    waiting = await repository.waiting_calls(session, grouping, RELEASE_MAX)
    store = DatabaseSegmentStore(database, known, waiting)
    yield store
    await store.save(session)


def forgetting(accepted: Accepted) -> Statements | None:
    """What forgets the calls ``accepted`` released, to run once what they became is
    stored; None when it released none."""
    message_ids = accepted.released_ids
    if not message_ids:
        return None

    async def forget(session: AsyncSession) -> None:
        await repository.forget_calls(session, message_ids)
        metrics.SEGMENT_CALLS_WAITING.labels("released").inc(len(message_ids))

    return forget


async def expire_waiting_every(
    sessions: SessionFactory, intake: Intake, database: SegmentDatabase
) -> None:
    """Dead-letter, as ``unknown_account``, Segment calls whose user's group call never
    came within ``VITALS_INGEST_SEGMENT_WAIT_S``."""
    interval_s = min(WAITING_CHECK_S, database.wait.total_seconds() / 2)
    while True:
        await asyncio.sleep(interval_s)
        try:
            await _expire_waiting(sessions, intake, database.clock)
        except (DatabaseUnavailable, BrokerUnavailable, InFlight) as exc:
            log.warning("waiting Segment calls not expired yet: %s", exc)


async def _expire_waiting(sessions: SessionFactory, intake: Intake, clock: Clock) -> None:
    async with transaction(sessions) as session:
        expired = await repository.expired_calls(session, clock(), WAITING_BATCH)
    if not expired:
        return
    letters = [(service.never_grouped(call), WAITING_ORIGIN) for call in expired]
    await intake.submit(letters, "segment")
    async with transaction(sessions) as session:
        await repository.forget_calls(session, [call.message_id for call in expired])
    metrics.SEGMENT_CALLS_WAITING.labels("expired").inc(len(expired))
    log.info("dead-lettered %d Segment calls never grouped", len(expired))


def _storable(users: Collection[str]) -> list[str]:
    return [user for user in users if is_storable_id(user)]
