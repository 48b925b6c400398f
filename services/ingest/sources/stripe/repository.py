"""Queries on Stripe's table: each customer's account. Callers own the session and
the transaction."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest.models import stripe_customer_accounts
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
