"""Queries on Segment's tables: users' accounts and the calls waiting for them.
Callers own the session and the transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import segment_user_accounts, segment_waiting_calls
from services.ingest.sources.segment.service import WaitingCall
from shared.db import upsert


async def accounts_of_users(session: AsyncSession, user_ids: Collection[str]) -> dict[str, str]:
    if not user_ids:
        return {}
    table = segment_user_accounts
    result = await session.execute(
        select(table.c.user_id, table.c.account_id).where(table.c.user_id.in_(list(user_ids)))
    )
    return {user: account for user, account in result.all()}


async def save_user_accounts(
    session: AsyncSession, grouped: Mapping[str, tuple[str, datetime]], now: datetime
) -> None:
    """Keep, per user, the account of its latest ``group`` call (by event time)."""
    table = segment_user_accounts
    for user_id in sorted(grouped):
        account_id, grouped_at = grouped[user_id]
        statement = upsert(session, table).values(
            user_id=user_id, account_id=account_id, grouped_at=grouped_at, updated_at=now
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["user_id"],
                set_={"account_id": account_id, "grouped_at": grouped_at, "updated_at": now},
                where=table.c.grouped_at <= grouped_at,
            )
        )


async def hold_calls(session: AsyncSession, calls: Sequence[WaitingCall], wait: timedelta) -> None:
    """Keep ``calls`` until their users' group calls, each for ``wait`` from its receipt;
    a call kept already stays as is."""
    table = segment_waiting_calls
    for call in sorted(calls, key=lambda c: c.message_id):
        statement = upsert(session, table).values(
            message_id=call.message_id,
            user_id=call.user_id,
            call=call.call,
            received_at=call.received_at,
            expires_at=call.received_at + wait,
        )
        await session.execute(statement.on_conflict_do_nothing(index_elements=["message_id"]))


async def waiting_calls(
    session: AsyncSession, user_ids: Collection[str], limit: int
) -> list[WaitingCall]:
    """The calls kept for ``user_ids``, oldest first."""
    if not user_ids:
        return []
    table = segment_waiting_calls
    result = await session.execute(
        select(table.c.message_id, table.c.user_id, table.c.call, table.c.received_at)
        .where(table.c.user_id.in_(sorted(user_ids)))
        .order_by(table.c.received_at, table.c.message_id)
        .limit(limit)
    )
    return [WaitingCall(*row) for row in result.all()]


async def expired_calls(session: AsyncSession, now: datetime, limit: int) -> list[WaitingCall]:
    table = segment_waiting_calls
    result = await session.execute(
        select(table.c.message_id, table.c.user_id, table.c.call, table.c.received_at)
        .where(table.c.expires_at <= now)
        .order_by(table.c.expires_at, table.c.message_id)
        .limit(limit)
    )
    return [WaitingCall(*row) for row in result.all()]


async def forget_calls(session: AsyncSession, message_ids: Collection[str]) -> None:
    if message_ids:
        table = segment_waiting_calls
        await session.execute(delete(table).where(table.c.message_id.in_(sorted(message_ids))))
