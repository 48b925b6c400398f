"""Async database plumbing: engines, sessions and upserts.

PostgreSQL (asyncpg) in production; SQLite (aiosqlite) for a first local run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict, TypeVar

import orjson
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    Integer,
    Table,
    Text,
    TextClause,
    TypeDecorator,
    bindparam,
    event,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import ConnectionPoolEntry

SessionFactory = async_sessionmaker[AsyncSession]
T = TypeVar("T")
BIG_ID = BigInteger().with_variant(Integer, "sqlite")
"""A 64-bit autoincrementing key; SQLite autoincrements only its INTEGER primary keys."""


def _json_text(value: object) -> str:
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


class JsonCodec(TypedDict):
    """How an engine writes and reads its JSON columns (``create_async_engine``'s)."""

    json_serializer: Callable[[object], str]
    json_deserializer: Callable[[str], object]


# orjson instead of the standard library for JSON columns: scoring's account states
# are large, and the standard codec took a sixth of the consumer's time.
JSON_CODEC: JsonCodec = {"json_serializer": _json_text, "json_deserializer": orjson.loads}


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


def _tune_sqlite(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    # WAL lets the API read while the consumer writes; the busy timeout makes
    # concurrent writers in one process wait instead of failing.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_postgresql(session: AsyncSession) -> bool:
    return session.bind is not None and session.bind.dialect.name == "postgresql"


def upsert(session: AsyncSession, table: Table) -> Any:
    """An INSERT that takes ``.on_conflict_do_update`` on PostgreSQL and SQLite alike."""
    dialect = session.bind.dialect.name if session.bind else "postgresql"
    return (sqlite.insert if dialect == "sqlite" else postgresql.insert)(table)


# Rows per statement: one statement must not carry hundreds of MB of account state.
ROWS_PER_STATEMENT = 1_000
SQLITE_MAX_VARIABLES = 30_000


async def insert_rows(
    session: AsyncSession, table: Table, rows: Sequence[Mapping[str, object]], on_conflict: str = ""
) -> None:
    """Insert ``rows`` (every row with the same keys) in a few statements.

    Values of JSON columns must be JSON text already: it is written as is.
    ``on_conflict`` is an ``ON CONFLICT ...`` clause, the same SQL on both databases.
    On PostgreSQL each statement binds one array per column and reads them back with
    ``unnest``, so its plan is the same whatever the number of rows: a multi-row
    VALUES list would be a new statement to parse and plan for every batch size.
    (asyncpg's executemany would be one round trip too, but a cancelled executemany
    never returns, and a service must stop when told to.)"""
    if not rows:
        return
    columns = [table.c[name] for name in rows[0]]
    if is_postgresql(session):
        statement = text(_unnest_insert(table, columns, on_conflict))
        for chunk in _chunks(rows, ROWS_PER_STATEMENT):
            await session.execute(statement, {c.name: [r[c.name] for r in chunk] for c in columns})
        return
    per_statement = min(ROWS_PER_STATEMENT, SQLITE_MAX_VARIABLES // len(columns))
    for chunk in _chunks(rows, per_statement):
        await session.execute(*_values_insert(table, columns, chunk, on_conflict))


def _unnest_insert(table: Table, columns: list[Column[object]], on_conflict: str) -> str:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(f"CAST(:{c.name} AS {_array_element(c, dialect)}[])" for c in columns)
    names = ", ".join(c.name for c in columns)
    values = ", ".join(f"CAST({c.name} AS json)" if _is_json(c) else c.name for c in columns)
    return (
        f"INSERT INTO {table.name} ({names}) SELECT {values} "
        f"FROM unnest({arrays}) AS incoming ({names}) {on_conflict}"
    )


def _array_element(column: Column[object], dialect: Dialect) -> str:
    return "text" if _is_json(column) else column.type.compile(dialect=dialect)


def _values_insert(
    table: Table,
    columns: list[Column[object]],
    rows: Sequence[Mapping[str, object]],
    on_conflict: str,
) -> tuple[TextClause, dict[str, object]]:
    names = ", ".join(c.name for c in columns)
    tuples = ", ".join(
        "(" + ", ".join(f":{c.name}_{n}" for c in columns) + ")" for n in range(len(rows))
    )
    statement = text(f"INSERT INTO {table.name} ({names}) VALUES {tuples} {on_conflict}")
    statement = statement.bindparams(
        *(
            bindparam(f"{c.name}_{n}", type_=Text() if _is_json(c) else c.type)
            for n in range(len(rows))
            for c in columns
        )
    )
    values = {f"{c.name}_{n}": row[c.name] for n, row in enumerate(rows) for c in columns}
    return statement, values


def _is_json(column: Column[object]) -> bool:
    return isinstance(column.type, JSON)


def _chunks(rows: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


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
