"""The ingest database as the request path uses it: an outage is one exception."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory
from shared.errors import describe
from shared.faults import Transient, is_transient

Statements = Callable[[AsyncSession], Awaitable[None]]
"""Statements to run in a transaction someone else opens (and commits)."""


class DatabaseUnavailable(Transient):
    """The ingest database did not answer: nothing was published, retry later."""


@contextlib.asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    try:
        async with sessions() as session, session.begin():
            yield session
    except (SQLAlchemyError, OSError) as exc:
        if not is_transient(exc):
            raise  # a statement refused: a fault to see, not an outage to retry forever
        raise DatabaseUnavailable(f"ingest database: {describe(exc)}") from exc
