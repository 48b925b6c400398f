"""Helpers for scoring integration tests: settings with own DLQ, records, API polling."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import httpx
from sqlalchemy import func, select

from services.scoring.domain import AccountState
from services.scoring.models import Account, consumer_offsets
from services.scoring.settings import ScoringSettings
from shared.db import create_engine, session_factory
from shared.events import Event
from tests.support.apps import scoring_settings


def settings_for(
    kafka: str, database: str, topics: dict[str, str], **overrides: Any
) -> ScoringSettings:
    return scoring_settings(
        kafka=kafka,
        database=database,
        topics=topics,
        dlq_topic=f"{topics['events_topic']}.dlq",
        **overrides,
    )


async def stored_account(database: str, account_id: str, at: datetime) -> None:
    """An account scoring has seen (its first state), written straight to ``database``."""
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session, session.begin():
            state = AccountState(account_id=account_id).model_dump(mode="json")
            session.add(Account(account_id=account_id, state=state, updated_at=at))
    finally:
        await engine.dispose()


def records(events: list[Event]) -> list[tuple[bytes, bytes]]:
    return [(e.account_id.encode(), e.to_bytes()) for e in events]


def account_where(
    api: httpx.AsyncClient, account_id: str, check: Callable[[dict[str, Any]], bool]
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    """A wait_for condition: the account as the API shows it, once ``check`` holds."""

    async def condition() -> dict[str, Any] | None:
        response = await api.get(f"/v1/accounts/{account_id}")
        if response.status_code != 200:
            return None
        account: dict[str, Any] = response.json()
        return account if check(account) else None

    return condition


def applied(
    api: httpx.AsyncClient, account_id: str, count: int
) -> Callable[[], Awaitable[dict[str, Any] | None]]:
    return account_where(api, account_id, lambda a: a["events_applied"] == count)


async def stored_positions(database: str) -> int:
    """Events scoring flushed: the sum of the next offsets it stored with its states."""
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            total = await connection.scalar(select(func.sum(consumer_offsets.c.next_offset)))
    finally:
        await engine.dispose()
    return int(total or 0)
