"""Queries of the scoring service. The caller owns the session and the commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.domain import AccountState
from services.scoring.models import Account, ScoreHistory
from shared.scores import ScoreChange


async def load_states(session: AsyncSession, account_ids: Iterable[str]) -> dict[str, Account]:
    rows = await session.scalars(select(Account).where(Account.account_id.in_(set(account_ids))))
    return {row.account_id: row for row in rows}


def save_state(
    session: AsyncSession, row: Account | None, state: AccountState, now: datetime
) -> Account:
    if row is None:
        row = Account(account_id=state.account_id)
        session.add(row)
    row.state = state.model_dump(mode="json")
    row.health_score = state.score.health_score if state.score else None
    row.band = state.score.band.value if state.score else None
    row.sequence = state.sequence
    row.updated_at = now
    return row


def add_history(session: AsyncSession, change: ScoreChange) -> None:
    session.add(
        ScoreHistory(
            account_id=change.account_id,
            sequence=change.sequence,
            health_score=change.health_score,
            band=change.band.value,
            message=change.model_dump(mode="json"),
            computed_at=change.computed_at,
        )
    )


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def unpublished_changes(session: AsyncSession, limit: int) -> Sequence[ScoreHistory]:
    rows = await session.scalars(
        select(ScoreHistory)
        .where(ScoreHistory.published_at.is_(None))
        .order_by(ScoreHistory.id)
        .limit(limit)
    )
    return rows.all()


async def mark_published(session: AsyncSession, ids: list[int], now: datetime) -> None:
    await session.execute(
        update(ScoreHistory).where(ScoreHistory.id.in_(ids)).values(published_at=now)
    )
