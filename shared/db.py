"""Async database plumbing: engines, sessions, a readiness probe and upserts.

PostgreSQL (asyncpg) in production; SQLite (aiosqlite) for a first local run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import DateTime, Dialect, Table, TypeDecorator, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

SessionFactory = async_sessionmaker[AsyncSession]


def _json_text(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


# orjson instead of the standard library for JSON columns: scoring's account states
# are large, and the standard codec took a sixth of the consumer's time.
JSON_CODEC: dict[str, Any] = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


def create_engine(url: str, *, pool_size: int = 5, pre_ping: bool = True) -> AsyncEngine:
    """``pre_ping`` checks each pooled connection before use (three round trips on
    asyncpg); a hot path may skip it and treat a dead connection as one failed request."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_async_engine(
            url,
            pool_pre_ping=pre_ping,
            pool_size=pool_size,
            max_overflow=pool_size,
            **JSON_CODEC,
        )
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(url, connect_args={"timeout": 30}, **JSON_CODEC)
    event.listen(engine.sync_engine, "connect", _tune_sqlite)
    return engine


def _tune_sqlite(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets the API read while the consumer writes; the busy timeout makes
    # concurrent writers in one process wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


async def probe_database(engine: AsyncEngine) -> str | None:
    """``None`` when the database answers, else what went wrong."""
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        return f"unreachable: {type(exc).__name__}: {exc}".splitlines()[0]
    return None


def upsert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that takes ``.on_conflict_do_update`` on PostgreSQL and SQLite alike."""
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


def redact_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that reads back aware on SQLite too (it stores none)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value
