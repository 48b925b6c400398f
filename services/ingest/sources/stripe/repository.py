"""Queries on Stripe's tables: each customer's account, and the events kept aside for
customers with none. Callers own the session and the transaction."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import stripe_customer_accounts, stripe_unmapped_events
from shared.db import upsert


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


async def keep_unmapped(session: AsyncSession, row: Mapping[str, object]) -> None:
    """Keep a billing event of an unmapped customer aside; Stripe's retries keep it once."""
    table = stripe_unmapped_events
    statement = upsert(session, table).values(**row)
    await session.execute(statement.on_conflict_do_nothing(index_elements=["event_id"]))


async def unmapped_events_of(session: AsyncSession, customer_id: str) -> list[bytes]:
    """The kept events of ``customer_id``, oldest first (``Event.to_bytes``)."""
    table = stripe_unmapped_events
    result = await session.execute(
        select(table.c.event)
        .where(table.c.customer_id == customer_id)
        .order_by(table.c.occurred_at, table.c.event_id)
    )
    return list(result.scalars())


async def forget_unmapped(session: AsyncSession, event_ids: Sequence[str]) -> None:
    table = stripe_unmapped_events
    await session.execute(delete(table).where(table.c.event_id.in_(event_ids)))


async def unmapped_rows(session: AsyncSession) -> list[UnmappedRow]:
    """Every kept event's facts (not its bytes), by customer and time."""
    table = stripe_unmapped_events
    result = await session.execute(
        select(
            table.c.customer_id,
            table.c.event_id,
            table.c.name,
            table.c.occurred_at,
            table.c.customer_email,
            table.c.customer_name,
            table.c.amount_minor,
            table.c.mrr_minor,
            table.c.currency,
        ).order_by(table.c.customer_id, table.c.occurred_at, table.c.event_id)
    )
    return [UnmappedRow(*row) for row in result.all()]


@dataclass(frozen=True)
class UnmappedRow:
    customer_id: str
    event_id: str
    name: str
    occurred_at: datetime
    customer_email: str | None
    customer_name: str | None
    amount_minor: int | None
    mrr_minor: int | None
    currency: str | None
