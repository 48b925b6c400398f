"""Scoring's storage in PostgreSQL (``service.ScoringStore``), within one transaction.

States come from the process's :class:`StateCache` when it holds them, else from the
database; the revenue distribution is kept between units of work and read again at
the start of every sweep.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring import metrics, repository
from services.scoring.domain import AccountState, Override, Portfolio
from services.scoring.models import AccountOverride
from services.scoring.retention import repository as retention
from services.scoring.service import Scored, StoredOverride
from services.scoring.state_cache import StateCache


class Kept:
    """What a scoring process keeps between transactions: states and the portfolio."""

    def __init__(self, cache_accounts: int) -> None:
        self.cache = StateCache(cache_accounts)
        self.portfolio: Portfolio | None = None

    def forget(self) -> None:
        """Drop every state held in memory: see ``state_cache``."""
        self.cache.clear()
        metrics.STATES_CACHED.set(0)


class PostgresScoringStore:
    def __init__(self, session: AsyncSession, kept: Kept) -> None:
        self._session = session
        self._kept = kept

    async def refresh_portfolio(self) -> None:
        self._kept.portfolio = await repository.portfolio(self._session)

    async def states(self, account_ids: Collection[str]) -> dict[str, AccountState]:
        states: dict[str, AccountState] = {}
        missing: list[str] = []
        for account_id in account_ids:
            state = self._kept.cache.get(account_id)
            if state is None:
                missing.append(account_id)
            else:
                states[account_id] = state
        if missing:
            loaded = await repository.load_states(self._session, missing)
            metrics.STATES_LOADED.inc(len(loaded))
            for state in loaded.values():
                self._kept.cache.put(state)
            states.update(loaded)
        return states

    async def overrides(self, account_ids: Collection[str]) -> dict[str, list[StoredOverride]]:
        rows = await repository.unsettled_overrides(self._session, account_ids)
        return {account: [_stored(row) for row in found] for account, found in rows.items()}

    async def portfolio(self) -> Portfolio:
        if self._kept.portfolio is None:
            await self.refresh_portfolio()
        assert self._kept.portfolio is not None
        return self._kept.portfolio

    async def save(self, scored: Scored, overridden: Collection[str], now: datetime) -> None:
        await repository.save_states(self._session, scored.writes, now)
        await retention.record(self._session, scored.writes, now)
        await repository.add_history(self._session, scored.changes)
        for write in scored.writes:
            self._kept.cache.put(write.state)  # a new account's state is known from now on
        metrics.STATES_CACHED.set(len(self._kept.cache))
        if overridden:
            await repository.settle_overrides(self._session, overridden, scored.lapsed, now)


def _stored(row: AccountOverride) -> StoredOverride:
    field_name: Literal["band", "tier"] = "band" if row.field == "band" else "tier"
    override = Override(id=row.id, field=field_name, value=row.value, expires_at=row.expires_at)
    in_force = row.lifted_at is None and row.lapsed_at is None
    return StoredOverride(override, in_force, bool(row.pending))
