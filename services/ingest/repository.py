"""Queries on the table of seen event ids (deduplication). Callers own the session and
the transaction; each source's own tables have their queries in its folder."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, TextClause, delete, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import seen_events
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
