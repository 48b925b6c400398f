"""Consumer positions kept in the service's own database.

They are written in the same transaction as the state they produced, so the
database, not Kafka, says where a partition resumes after a crash or rebalance.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiokafka import TopicPartition
from sqlalchemy import BigInteger, Column, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import UtcDateTime, upsert


def consumer_offsets_table(metadata: MetaData, name: str) -> Table:
    return Table(
        name,
        metadata,
        Column("consumer_group", String(200), primary_key=True),
        Column("topic", String(255), primary_key=True),
        Column("partition", Integer, primary_key=True),
        Column("next_offset", BigInteger, nullable=False),
        Column("updated_at", UtcDateTime(), nullable=False),
    )


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


async def save_offsets(
    session: AsyncSession, table: Table, group: str, positions: dict[TopicPartition, int]
) -> None:
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
