"""The durable Segment user -> account mapping, from ``group`` calls, and the calls
that wait for their user's ``group`` call."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.ingest import metrics
from services.ingest.database import transaction
from services.ingest.domain import Held, Item, Limits
from services.ingest.sources.segment import mapping as segment
from services.ingest.sources.segment import repository
from services.ingest.sources.segment.repository import WaitingCall
from shared.clock import Clock
from shared.db import SessionFactory
from shared.events import is_storable_id

RELEASE_MAX = 1_000  # calls released by one group call; the rest come with the next


@dataclass(frozen=True)
class Released:
    """Waiting calls mapped now that their users' accounts are known, and their ids."""

    items: list[Item] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)


class SegmentUsers:
    def __init__(self, sessions: SessionFactory, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def accounts(self, user_ids: Collection[str]) -> dict[str, str]:
        user_ids = [user for user in user_ids if is_storable_id(user)]
        if not user_ids:
            return {}
        async with transaction(self._sessions) as session:
            return await repository.accounts_of_users(session, user_ids)

    async def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        grouped = {user: said for user, said in grouped.items() if is_storable_id(user)}
        if grouped:
            async with transaction(self._sessions) as session:
                await repository.save_user_accounts(session, grouped, self._clock())

    async def hold(self, held: Sequence[Held], received_at: datetime, keep: timedelta) -> None:
        """Keep calls whose user has no account yet, until ``keep`` has passed."""
        calls = [WaitingCall(h.message_id, h.user_id, h.original, received_at) for h in held]
        if calls:
            async with transaction(self._sessions) as session:
                await repository.hold_calls(session, calls, received_at + keep)
            metrics.SEGMENT_CALLS_WAITING.labels("held").inc(len(calls))

    async def release(self, accounts: Mapping[str, str], limits: Limits) -> Released:
        """The calls that waited for these users' group calls, mapped to their accounts;
        ``forget`` them once what they became is stored."""
        user_ids = [user for user in accounts if is_storable_id(user)]
        if not user_ids:
            return Released()
        async with transaction(self._sessions) as session:
            waiting = await repository.waiting_calls(session, user_ids, RELEASE_MAX)
        calls = [(w.call, w.received_at) for w in waiting]
        return Released(segment.released(calls, accounts, limits), [w.message_id for w in waiting])

    async def expired(self, limit: int) -> list[WaitingCall]:
        async with transaction(self._sessions) as session:
            return await repository.expired_calls(session, self._clock(), limit)

    async def forget(self, message_ids: Collection[str], outcome: str = "released") -> None:
        """Drop calls published (``released``) or dead-lettered (``expired``)."""
        if message_ids:
            async with transaction(self._sessions) as session:
                await repository.forget_calls(session, message_ids)
            metrics.SEGMENT_CALLS_WAITING.labels(outcome).inc(len(message_ids))
