"""The ingest database as the request path uses it: a failure is one exception."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory


class DatabaseUnavailable(Exception):
    """The ingest database did not answer: nothing was published, retry later."""


@contextlib.asynccontextmanager
async def transaction(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    try:
        async with sessions() as session, session.begin():
            yield session
    except (SQLAlchemyError, OSError) as exc:
        problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise DatabaseUnavailable(f"ingest database: {problem}") from exc
