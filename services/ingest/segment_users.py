"""The durable Segment user -> account mapping, from ``group`` calls."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime

from services.ingest import repository
from services.ingest.database import transaction
from shared.clock import Clock
from shared.db import SessionFactory


class SegmentUsers:
    def __init__(self, sessions: SessionFactory, clock: Clock) -> None:
        self._sessions = sessions
        self._clock = clock

    async def accounts(self, user_ids: Collection[str]) -> dict[str, str]:
        if not user_ids:
            return {}
        async with transaction(self._sessions) as session:
            return await repository.accounts_of_users(session, user_ids)

    async def remember(self, grouped: Mapping[str, tuple[str, datetime]]) -> None:
        if grouped:
            async with transaction(self._sessions) as session:
                await repository.save_user_accounts(session, grouped, self._clock())
