"""Queries on the ingest tables. Callers own the session and the transaction."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, TextClause, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import (
    seen_events,
    segment_user_accounts,
    segment_waiting_calls,
    stripe_customer_accounts,
)
from shared.db import upsert

# On PostgreSQL the ids travel as one array parameter: a constant statement that is
# prepared once per connection, where a VALUES list of 4 parameters per row would be
# compiled and planned again for every batch size.
_CLAIM_PG = text(
    """
    INSERT INTO ingest_seen_events AS seen (event_id, claimed_at, published_at, expires_at)
    SELECT id, CAST(:now AS timestamptz), NULL, CAST(:expires_at AS timestamptz)
    FROM unnest(CAST(:ids AS text[])) AS id ORDER BY id
    ON CONFLICT (event_id) DO UPDATE
    SET claimed_at = excluded.claimed_at, published_at = NULL, expires_at = excluded.expires_at
    WHERE seen.expires_at <= excluded.claimed_at
       OR (seen.published_at IS NULL AND seen.claimed_at < CAST(:stale_before AS timestamptz))
    RETURNING event_id
    """
)
_UNPUBLISHED_PG = text(
    "SELECT event_id FROM ingest_seen_events"
    " WHERE event_id = ANY(CAST(:ids AS text[])) AND published_at IS NULL"
)
_MARK_PUBLISHED_PG = text(
    "UPDATE ingest_seen_events SET published_at = CAST(:at AS timestamptz)"
    " WHERE event_id = ANY(CAST(:ids AS text[]))"
)
_FORGET_CLAIMS_PG = text(
    "DELETE FROM ingest_seen_events"
    " WHERE event_id = ANY(CAST(:ids AS text[])) AND published_at IS NULL"
)


async def claim_event_ids(
    session: AsyncSession,
    event_ids: Sequence[str],
    *,
    now: datetime,
    expires_at: datetime,
    stale_before: datetime,
) -> set[str]:
    """Claim ids never seen, expired, or left unpublished since ``stale_before``.

    Returns the ids claimed. Ids are inserted in sorted order so that two
    concurrent claims on PostgreSQL lock rows in the same order and cannot deadlock.
    """
    if not event_ids:
        return set()
    ids = sorted(set(event_ids))
    if _on_postgresql(session):
        times = {"now": now, "expires_at": expires_at, "stale_before": stale_before}
        return await _ids_of(session, _CLAIM_PG, ids, **times)
    table = seen_events
    rows = [
        {"event_id": i, "claimed_at": now, "published_at": None, "expires_at": expires_at}
        for i in ids
    ]
    statement = upsert(session, table).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=["event_id"],
        set_={"claimed_at": now, "published_at": None, "expires_at": expires_at},
        where=or_(
            table.c.expires_at <= now,
            (table.c.published_at.is_(None)) & (table.c.claimed_at < stale_before),
        ),
    ).returning(table.c.event_id)
    result = await session.execute(statement)
    return {row[0] for row in result}


async def unpublished(session: AsyncSession, event_ids: Collection[str]) -> set[str]:
    """Those of ``event_ids`` claimed but not published yet."""
    if not event_ids:
        return set()
    if _on_postgresql(session):
        return await _ids_of(session, _UNPUBLISHED_PG, list(event_ids))
    table = seen_events
    result = await session.execute(
        select(table.c.event_id).where(
            table.c.event_id.in_(list(event_ids)), table.c.published_at.is_(None)
        )
    )
    return {row[0] for row in result}


async def mark_published(
    session: AsyncSession, event_ids: Collection[str], published_at: datetime
) -> None:
    if not event_ids:
        return
    if _on_postgresql(session):
        await _core(session, _MARK_PUBLISHED_PG, list(event_ids), at=published_at)
        return
    table = seen_events
    await session.execute(
        update(table).where(table.c.event_id.in_(list(event_ids))).values(published_at=published_at)
    )


async def forget_claims(session: AsyncSession, event_ids: Collection[str]) -> None:
    if not event_ids:
        return
    if _on_postgresql(session):
        await _core(session, _FORGET_CLAIMS_PG, list(event_ids))
        return
    table = seen_events
    await session.execute(
        delete(table).where(table.c.event_id.in_(list(event_ids)), table.c.published_at.is_(None))
    )


def _on_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


async def _ids_of(
    session: AsyncSession, statement: TextClause, ids: list[str], **params: object
) -> set[str]:
    result = await _core(session, statement, ids, **params)
    return {row[0] for row in result}


async def _core(
    session: AsyncSession, statement: TextClause, ids: list[str], **params: object
) -> CursorResult[Any]:
    # The session's own connection, in its transaction, without the ORM's execute path.
    connection = await session.connection()
    return await connection.execute(statement, {"ids": ids, **params})


async def prune_expired(session: AsyncSession, now: datetime, limit: int) -> int:
    """Delete up to ``limit`` expired ids; returns how many went."""
    table = seen_events
    expired = select(table.c.event_id).where(table.c.expires_at <= now).limit(limit)
    result = await session.execute(delete(table).where(table.c.event_id.in_(expired)))
    return int(getattr(result, "rowcount", 0) or 0)


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


@dataclass(frozen=True)
class WaitingCall:
    message_id: str
    user_id: str
    call: bytes
    received_at: datetime


async def hold_calls(
    session: AsyncSession, calls: Sequence[WaitingCall], expires_at: datetime
) -> None:
    """Keep ``calls`` until their users' group calls; a call kept already stays as is."""
    table = segment_waiting_calls
    for call in sorted(calls, key=lambda c: c.message_id):
        statement = upsert(session, table).values(
            message_id=call.message_id,
            user_id=call.user_id,
            call=call.call,
            received_at=call.received_at,
            expires_at=expires_at,
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


async def account_of_customer(session: AsyncSession, customer_id: str) -> str | None:
    table = stripe_customer_accounts
    result = await session.execute(
        select(table.c.account_id).where(table.c.customer_id == customer_id)
    )
    return result.scalar_one_or_none()


async def save_customer_account(
    session: AsyncSession,
    customer_id: str,
    account_id: str | None,
    as_of: datetime,
    now: datetime,
) -> None:
    """Keep what the latest ``customer.*`` event (by Stripe's time) said; Stripe does
    not promise delivery in order."""
    table = stripe_customer_accounts
    values = {"account_id": account_id, "as_of": as_of, "updated_at": now}
    statement = upsert(session, table).values(customer_id=customer_id, **values)
    await session.execute(
        statement.on_conflict_do_update(
            index_elements=["customer_id"], set_=values, where=table.c.as_of <= as_of
        )
    )
