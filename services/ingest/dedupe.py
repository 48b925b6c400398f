"""Deduplication by ``event_id``: a repeated delivery yields one normalised event.

An id is *claimed* before its event is published, *confirmed* once the broker
acknowledged it and *released* when publishing failed, so a sender's retry is
never mistaken for a repeat of something that was not stored.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import repository
from services.ingest.database import DatabaseUnavailable, Statements, transaction
from shared.clock import Clock
from shared.db import SessionFactory
from shared.faults import Transient

log = logging.getLogger(__name__)


class InFlight(Transient):
    """Another request is publishing one of these ids right now: retry shortly."""


@dataclass(frozen=True)
class Claim:
    new: frozenset[str] = field(default_factory=frozenset)


class Claimer(Protocol):
    session: AsyncSession
    """The claim's transaction: statements of the caller's may share it."""

    async def claim(self, event_ids: Sequence[str]) -> Claim:
        """Claim the ids not seen yet; if one is being published, claim none, and
        leaving the transaction raises ``InFlight``."""


class Deduplicator(Protocol):
    async def claim(self, event_ids: Sequence[str]) -> Claim:
        """Claim the ids not seen yet; raise ``InFlight`` if one is being published."""

    def claiming(self) -> AbstractAsyncContextManager[Claimer]:
        """A transaction to claim ids in (as ``claim``) with statements of the caller's."""

    async def confirm(self, event_ids: Collection[str], then: Statements | None = None) -> None:
        """The broker acknowledged these ids' events; ``then`` runs in the same transaction."""

    async def release(self, event_ids: Collection[str]) -> None:
        """Publishing failed: forget these claims."""


class DatabaseDeduplicator:
    """Seen ids in the ingest database, shared by every replica, kept ``window``.

    A claim left unpublished for ``lease`` (its process died between claiming and
    confirming) may be taken over, so a crash delays an event, never loses it.
    Memory use does not grow with traffic: the ids live in the database, and
    :meth:`prune` deletes expired ones.
    """

    def __init__(
        self, sessions: SessionFactory, window: timedelta, lease: timedelta, clock: Clock
    ) -> None:
        self._sessions = sessions
        self._window = window
        self._lease = lease
        self._clock = clock

    async def claim(self, event_ids: Sequence[str]) -> Claim:
        if not event_ids:
            return Claim()
        async with self.claiming() as claimer:
            return await claimer.claim(event_ids)

    @contextlib.asynccontextmanager
    async def claiming(self) -> AsyncIterator[Claimer]:
        async with transaction(self._sessions) as session:
            claimer = _Claimer(session, self._clock, self._window, self._lease)
            yield claimer
        if claimer.in_flight:
            raise InFlight(
                f"{claimer.in_flight} event id(s) are being published by another request"
            )

    async def confirm(self, event_ids: Collection[str], then: Statements | None = None) -> None:
        if not event_ids and then is None:
            return
        try:
            async with self._confirming(then) as session:
                if then is not None:  # first, in the lock order of the claim's transaction
                    await then(session)
                await repository.mark_published(session, event_ids, self._clock())
        except DatabaseUnavailable as exc:
            # Published already; the claim expires after its lease and a repeat may
            # then pass once more (consumers drop it by event_id).
            log.warning("could not confirm %d published id(s): %s", len(event_ids), exc)

    def _confirming(self, then: Statements | None) -> AbstractAsyncContextManager[AsyncSession]:
        if then is None:
            return _one_statement(self._sessions)
        return transaction(self._sessions)

    async def release(self, event_ids: Collection[str]) -> None:
        try:
            async with _one_statement(self._sessions) as session:
                await repository.forget_claims(session, event_ids)
        except DatabaseUnavailable as exc:
            log.warning("could not release %d claim(s), they expire: %s", len(event_ids), exc)

    async def prune(self, batch: int = 10_000) -> int:
        """Delete expired ids, ``batch`` at a time; returns how many went."""
        deleted = 0
        while True:
            async with transaction(self._sessions) as session:
                count = await repository.prune_expired(session, self._clock(), batch)
            deleted += count
            if count < batch:
                return deleted


@dataclass
class _Claimer:
    session: AsyncSession
    clock: Clock
    window: timedelta
    lease: timedelta
    in_flight: int = 0
    """How many of the ids another request was publishing."""

    async def claim(self, event_ids: Sequence[str]) -> Claim:
        if not event_ids:
            return Claim()
        now = self.clock()
        # One transaction, not one statement: the ids it could not claim stay locked until
        # the in-flight check, so a concurrent release cannot pass an unstored event off
        # as a repeat.
        claimed = await repository.claim_event_ids(
            self.session,
            event_ids,
            now=now,
            expires_at=now + self.window,
            stale_before=now - self.lease,
        )
        in_flight = await repository.unpublished(self.session, set(event_ids) - claimed)
        if not in_flight:
            return Claim(frozenset(claimed))
        # Give back what this request claimed: its retry claims all again.
        await repository.forget_claims(self.session, claimed)
        self.in_flight = len(in_flight)
        return Claim()


@contextlib.asynccontextmanager
async def _one_statement(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session for a lone statement, atomic by itself: on PostgreSQL it runs without
    the BEGIN and COMMIT round trips."""
    async with transaction(sessions) as session:
        if session.bind is not None and session.bind.dialect.name == "postgresql":
            await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
