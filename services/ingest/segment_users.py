"""The durable Segment user -> account mapping, from ``group`` calls."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from services.ingest import repository
from services.ingest.database import transaction
from shared.clock import Clock
from shared.db import SessionFactory
from shared.events import is_storable_id


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
