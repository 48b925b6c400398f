"""Queries of the alerts service. The caller owns the session and the commit."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.models import AccountCursor, Alert, Delivery


async def load_cursors(
    session: AsyncSession, account_ids: Iterable[str]
) -> dict[str, AccountCursor]:
    rows = await session.scalars(
        select(AccountCursor).where(AccountCursor.account_id.in_(set(account_ids)))
    )
    return {row.account_id: row for row in rows}


async def latest_alerts(
    session: AsyncSession, account_ids: Iterable[str], rule: str
) -> dict[str, Alert]:
    """The newest episode of ``rule`` per account, open or resolved."""
    newest = (
        select(Alert.account_id, func.max(Alert.episode).label("episode"))
        .where(Alert.account_id.in_(set(account_ids)), Alert.rule == rule)
        .group_by(Alert.account_id)
        .subquery()
    )
    rows = await session.scalars(
        select(Alert)
        .join(
            newest,
            (Alert.account_id == newest.c.account_id) & (Alert.episode == newest.c.episode),
        )
        .where(Alert.rule == rule)
    )
    return {row.account_id: row for row in rows}


async def due_deliveries(session: AsyncSession, now: datetime, limit: int) -> Sequence[Delivery]:
    """Pending deliveries whose time has come, locked so no other replica sends them."""
    rows = await session.scalars(
        select(Delivery)
        .where(Delivery.status == "pending", Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return rows.all()


async def list_alerts(
    session: AsyncSession, state: str | None, account_id: str | None, limit: int
) -> Sequence[Alert]:
    query = select(Alert).order_by(Alert.opened_at.desc(), Alert.id).limit(limit)
    if state is not None:
        query = query.where(Alert.state == state)
    if account_id is not None:
        query = query.where(Alert.account_id == account_id)
    return (await session.scalars(query)).all()
