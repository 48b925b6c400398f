"""A service's dead-letter outbox: dead letters written in the transaction of the batch
that rejected them, and sent to the DLQ topic after it committed.

Scoring and alerts each own a table of these columns; this module owns every
statement on them. One row per source record (``source`` is unique), so a record
read again after a crash or a rebalance is dead-lettered once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
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

from shared.db import BIG_ID, SessionFactory, UtcDateTime, upsert
from shared.dlq import DeadLetter
from shared.kafka import send_all

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


async def publish_pending(
    sessions: SessionFactory,
    model: type[DeadLetterOutboxColumns],
    producer: AIOKafkaProducer,
    topic: str,
    now: datetime,
    limit: int,
    published: Counter,
) -> bool:
    """Send up to ``limit`` unsent dead letters, oldest first, counting each in
    ``published`` by reason; True when there may be more. Rows are locked until sent,
    one sender at a time."""
    async with sessions() as session, session.begin():
        pending: Sequence[DeadLetterOutboxColumns] = (
            await session.scalars(
                select(model)
                .where(model.published_at.is_(None))
                .order_by(model.id)
                .limit(limit)
                .with_for_update()
            )
        ).all()
        if not pending:
            return False
        records = [(row.key.encode(), orjson.dumps(row.message)) for row in pending]
        await send_all(producer, topic, records)
        ids = [row.id for row in pending]
        await session.execute(update(model).where(model.id.in_(ids)).values(published_at=now))
    for row in pending:
        published.labels(row.reason).inc()
    return len(pending) == limit
