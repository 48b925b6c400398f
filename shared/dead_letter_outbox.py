"""A service's dead-letter outbox: dead letters written in the transaction of the batch
that rejected them, and sent to the DLQ topic after it committed.

Scoring and alerts each own a table of these columns; this module owns every
statement on them. One row per source record (``source`` is unique), so a record
read again after a crash or a rebalance is dead-lettered once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from prometheus_client import Counter
from sqlalchemy import (
    JSON,
    Index,
    String,
    Table,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db import BIG_ID, UtcDateTime, upsert
from shared.dlq import DeadLetter, processor_name
from shared.outbox import (
    Backlog,
    OutboxRecord,
    OutboxRelay,
    OutboxTable,
    Refusals,
    Relaying,
    backlog_of,
)

UNPUBLISHED = text("published_at IS NULL")


class DeadLetterOutboxColumns:
    """The columns of a dead-letter outbox table; mix into a service's declarative model."""

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(300))
    source: Mapped[str | None] = mapped_column(String(300))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Index, ...]:
        name: str = getattr(cls, "__tablename__")  # noqa: B009 (set by the model, not the mixin)
        return (
            Index(
                f"ix_{name}_unpublished",
                "id",
                postgresql_where=UNPUBLISHED,
                sqlite_where=UNPUBLISHED,
            ),
            Index(f"uq_{name}_source", "source", unique=True),
        )


async def add(
    session: AsyncSession,
    model: type[DeadLetterOutboxColumns],
    letters: Sequence[DeadLetter],
    now: datetime,
) -> None:
    """Stage dead letters for sending; a source (a record) already there is skipped."""
    if not letters:
        return
    rows = [
        {
            "key": letter.key().decode()[:300],
            "source": letter.source[:300],
            "message": letter.model_dump(mode="json", exclude_none=True),
            "reason": letter.reason,
            "created_at": now,
        }
        for letter in letters
    ]
    table = inspect(model).local_table
    assert isinstance(table, Table)
    await session.execute(upsert(session, table).values(rows).on_conflict_do_nothing())


class DeadLetterTable:
    """A dead-letter outbox table as ``shared.outbox.OutboxRelay`` sends it, oldest first;
    each record is labelled with its reason."""

    def __init__(self, model: type[DeadLetterOutboxColumns]) -> None:
        self._model = model

    async def claim(self, session: AsyncSession, limit: int) -> Sequence[OutboxRecord]:
        model = self._model
        pending = await session.scalars(
            select(model)
            .where(model.published_at.is_(None))
            .order_by(model.id)
            .limit(limit)
            .with_for_update()
        )
        return [
            OutboxRecord(row.id, row.key.encode(), orjson.dumps(row.message), row.reason)
            for row in pending
        ]

    async def mark_sent(
        self, session: AsyncSession, row_ids: list[int | str], now: datetime
    ) -> None:
        model = self._model
        await session.execute(update(model).where(model.id.in_(row_ids)).values(published_at=now))

    async def backlog(self, session: AsyncSession) -> Backlog:
        return await backlog_of(session, self._model.published_at.is_(None), self._model.created_at)


def refusals(model: type[DeadLetterOutboxColumns], processor: str) -> Refusals:
    """Records an outbox relay cannot publish, dead-lettered into ``model``."""

    async def stage(session: AsyncSession, letters: Sequence[DeadLetter], now: datetime) -> None:
        await add(session, model, letters, now)

    return Refusals(stage, processor)


def relay(
    name: str,
    model: type[DeadLetterOutboxColumns],
    topic: str,
    relaying: Relaying,
    published: Counter,
) -> OutboxRelay:
    """The relay of a dead-letter outbox: each letter sent counted in ``published`` by
    reason. A letter too large to send (none is: dead letters are
    bounded) would be logged and counted, not dead-lettered again."""

    def counted(sent: Sequence[OutboxRecord]) -> None:
        for record in sent:
            published.labels(record.label).inc()

    return OutboxRelay(
        name, DeadLetterTable(model), topic, relaying, refusals=None, counted=counted
    )


def relays(
    service: str,
    outbox: tuple[str, OutboxTable, str, Callable[[Sequence[OutboxRecord]], None]],
    model: type[DeadLetterOutboxColumns],
    dlq_topic: str,
    published: Counter,
    relaying: Relaying,
) -> tuple[OutboxRelay, OutboxRelay]:
    """A service's topic outbox (name, table, topic, what counts a sent record), whose
    records too large to send become dead letters in ``model``, then the relay of
    ``model`` itself (``<service>_dead_letters``)."""
    name, table, topic, counted = outbox
    main = OutboxRelay(
        name,
        table,
        topic,
        relaying,
        refusals=refusals(model, processor_name(service)),
        counted=counted,
    )
    return main, relay(f"{service}_dead_letters", model, dlq_topic, relaying, published)
