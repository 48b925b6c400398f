"""Consumer positions kept in the service's own database.

They are written in the same transaction as the state they produced, so the
database, not Kafka, says where a partition resumes after a crash or rebalance.

A *fenced* offsets table also has an ``epoch`` per partition. A consumer that is
assigned a partition claims it (epoch + 1) and writes its positions only where the
epoch is still its own (compare-and-set), so a consumer that lost the partition in
a rebalance, and did not notice yet, cannot overwrite the new owner's work: its
transaction fails with :class:`Fenced` and rolls back.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, and_, select, update
from sqlalchemy.engine import CursorResult
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UtcDateTime, upsert

# A claimed partition with nothing consumed yet resumes at 0, i.e. from its beginning
# (an offset below the log start resets to the earliest one).
NOT_CONSUMED = 0


class Fenced(Exception):
    """Another consumer claimed the partition since we did: our writes must not land."""

    def __init__(self, partitions: set[TopicPartition]) -> None:
        names = sorted(f"{tp.topic}/{tp.partition}" for tp in partitions)
        super().__init__(f"partitions claimed by another consumer: {names}")
        self.partitions = partitions


def consumer_offsets_table(metadata: MetaData, name: str, *, fenced: bool = False) -> Table:
    columns: list[Column[Any]] = [
        Column("consumer_group", String(200), primary_key=True),
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    ]
    if fenced:
        columns.append(Column("epoch", BigInteger, nullable=False, server_default="0"))
    return Table(name, metadata, *columns)


def is_fenced(table: Table) -> bool:
    return "epoch" in table.c


async def load_offsets(
    session: AsyncSession, table: Table, group: str, partitions: set[TopicPartition]
) -> dict[TopicPartition, int]:
    topics = {tp.topic for tp in partitions}
    rows = await session.execute(
        select(table.c.topic, table.c.partition, table.c.next_offset).where(
            table.c.consumer_group == group, table.c.topic.in_(topics)
        )
    )
    stored = {TopicPartition(topic, partition): offset for topic, partition, offset in rows}
    return {tp: offset for tp, offset in stored.items() if tp in partitions}


async def claim_partitions(
    session: AsyncSession, table: Table, group: str, partitions: set[TopicPartition]
) -> dict[TopicPartition, int]:
    """Take ownership: raise each partition's epoch and return the new epochs."""
    now = datetime.now(UTC)
    epochs: dict[TopicPartition, int] = {}
    for tp in sorted(partitions):
        statement = upsert(session, table).values(
            consumer_group=group,
            topic=tp.topic,
            partition=tp.partition,
            next_offset=NOT_CONSUMED,
            updated_at=now,
            epoch=1,
        )
        statement = statement.on_conflict_do_update(
            index_elements=["consumer_group", "topic", "partition"],
            set_={"epoch": table.c.epoch + 1, "updated_at": now},
        ).returning(table.c.epoch)
        epochs[tp] = int((await session.execute(statement)).scalar_one())
    return epochs


async def check_epochs(
    session: AsyncSession, table: Table, group: str, epochs: dict[TopicPartition, int]
) -> None:
    """Raise Fenced unless every partition still has our epoch; lock them until commit."""
    await _compare_and_set(session, table, group, {tp: None for tp in epochs}, epochs)


async def save_offsets(
    session: AsyncSession,
    table: Table,
    group: str,
    positions: dict[TopicPartition, int],
    epochs: dict[TopicPartition, int] | None = None,
) -> None:
    """Store next offsets; with ``epochs``, only where they are still ours (else Fenced)."""
    if epochs is not None:
        await _compare_and_set(session, table, group, dict(positions), epochs)
        return
    now = datetime.now(UTC)
    for tp, next_offset in positions.items():
        statement = upsert(session, table).values(
            consumer_group=group,
            topic=tp.topic,
            partition=tp.partition,
            next_offset=next_offset,
            updated_at=now,
        )
        await session.execute(
            statement.on_conflict_do_update(
                index_elements=["consumer_group", "topic", "partition"],
                set_={"next_offset": next_offset, "updated_at": now},
            )
        )


async def _compare_and_set(
    session: AsyncSession,
    table: Table,
    group: str,
    positions: dict[TopicPartition, int | None],
    epochs: dict[TopicPartition, int],
) -> None:
    now = datetime.now(UTC)
    lost = {tp for tp in positions if tp not in epochs}
    for tp, next_offset in sorted(positions.items()):
        if tp in lost:
            continue
        values: dict[str, object] = {"updated_at": now}
        if next_offset is not None:
            values["next_offset"] = next_offset
        result = await session.execute(
            update(table)
            .where(
                and_(
                    table.c.consumer_group == group,
                    table.c.topic == tp.topic,
                    table.c.partition == tp.partition,
                    table.c.epoch == epochs[tp],
                )
            )
            .values(**values)
        )
        if isinstance(result, CursorResult) and result.rowcount != 1:
            lost.add(tp)
    if lost:
        raise Fenced(lost)
