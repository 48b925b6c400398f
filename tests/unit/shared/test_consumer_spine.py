"""The consume spine (``shared.consumer``) on a broker in memory and SQLite: a rebalance
in the middle of a batch, fencing by a newer epoch, a poison record in a batch of 300,
and a restart after a database outage, each ending with every record's effect stored
exactly once. The same guarantees run on real Kafka and PostgreSQL in
tests/integration/test_consumer_poison.py and tests/integration/scoring/."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from sqlalchemy import Column, Integer, LargeBinary, MetaData, String, Table, func, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.commit import DatabaseOffsets
from shared.consumer import Consumer, Records
from shared.db import SessionFactory, create_engine, session_factory
from shared.health import Readiness
from shared.metrics import CONSUMER_RESTARTS
from shared.offsets import claim_partitions, consumer_offsets_table
from tests.support.memory_broker import MemoryBroker
from tests.support.servers import wait_for

TOPIC, GROUP = "vitals.things", "spine-test"
TIMEOUT_S = 20

metadata = MetaData()
offsets = consumer_offsets_table(metadata, "spine_offsets", fenced=True)
effects = Table(
    "spine_effects",
    metadata,
    Column("topic", String(100)),
    Column("partition", Integer),
    Column("offset", Integer),
    Column("value", LargeBinary),
)
rejected = Table(
    "spine_rejected", metadata, Column("offset", Integer), Column("value", LargeBinary)
)


class Handler:
    """Stores each record's value as its effect; refuses the values in ``poison``; holds
    a batch while ``gate`` is closed; fails like a database away while ``outage`` is."""

    def __init__(self) -> None:
        self.poison: set[bytes] = set()
        self.gate = asyncio.Event()
        self.gate.set()
        self.in_batch = asyncio.Event()
        self.outage = False
        self.forgotten = 0

    async def apply(self, session: AsyncSession, records: Records) -> None:
        self.in_batch.set()
        await self.gate.wait()
        if self.outage:
            raise OperationalError("INSERT", {}, ConnectionRefusedError("database away"))
        if any(r.value in self.poison for r in records):
            raise ValueError("a record this handler cannot use")
        rows = [
            {"topic": r.topic, "partition": r.partition, "offset": r.offset, "value": r.value}
            for r in records
        ]
        await session.execute(insert(effects), rows)

    async def reject(self, session: AsyncSession, record: ConsumerRecord, problem: str) -> None:
        await session.execute(insert(rejected), [{"offset": record.offset, "value": record.value}])

    async def after_commit(self) -> None:
        return None

    def forget(self) -> None:
        self.forgotten += 1


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'spine.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def _spine(
    broker: MemoryBroker, sessions: SessionFactory, handler: Handler, max_records: int = 500
) -> Consumer[AsyncSession]:
    def make() -> AIOKafkaConsumer:
        consumer: Any = broker.consumer(GROUP)
        return consumer  # the part of AIOKafkaConsumer the spine uses

    return Consumer(
        name="spine",
        topics=[TOPIC],
        group_id=GROUP,
        make_consumer=make,
        commit=DatabaseOffsets(sessions, offsets, GROUP),
        handler=handler,
        readiness=Readiness("kafka", "consumer"),
        max_records=max_records,
        retry_max_s=0.05,
    )


@contextlib.asynccontextmanager
async def _running(*spines: Consumer[AsyncSession]) -> AsyncIterator[list[asyncio.Task[None]]]:
    tasks = [asyncio.create_task(s.run()) for s in spines]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _until(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await wait_for(condition, TIMEOUT_S, what, every_s=0.01)


def _produce(broker: MemoryBroker, count: int, start: int = 0) -> list[bytes]:
    values = [f"v{i}".encode() for i in range(start, start + count)]
    for value in values:
        broker.produce(TOPIC, value, value)
    return values


async def _stored(engine: AsyncEngine) -> list[bytes]:
    async with session_factory(engine)() as session:
        return list((await session.scalars(select(effects.c.value))).all())


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with session_factory(engine)() as session:
        return int((await session.scalar(select(func.count()).select_from(table))) or 0)


async def test_a_rebalance_in_the_middle_of_a_batch_waits_for_it_and_loses_or_doubles_nothing(
    engine: AsyncEngine,
) -> None:
    broker, sessions = MemoryBroker(partitions=4), session_factory(engine)
    first_handler, second_handler = Handler(), Handler()
    values = _produce(broker, 120)
    first_handler.gate.clear()  # the first batch stays in flight
    first = _spine(broker, sessions, first_handler, max_records=30)
    second = _spine(broker, sessions, second_handler, max_records=30)
    async with _running(first):
        await first_handler.in_batch.wait()
        async with _running(second):
            await _until(lambda: _rebalancing(broker), "the group to rebalance")
            assert await _count(engine, effects) == 0  # nothing flushed while the batch waits
            first_handler.gate.set()
            await _until(lambda: _has_all(engine, len(values)), "every record stored")
            await _until(lambda: _split(first, second), "partitions shared by both")

    assert sorted(await _stored(engine)) == sorted(values)  # each once


def _restarts() -> float:
    value: float = CONSUMER_RESTARTS.labels("spine")._value.get()
    return value


async def _rebalancing(broker: MemoryBroker) -> bool:
    return GROUP in broker.rebalancing


async def _has_all(engine: AsyncEngine, count: int) -> bool:
    return await _count(engine, effects) >= count


async def _split(first: Consumer[AsyncSession], second: Consumer[AsyncSession]) -> bool:
    return bool(first.assigned) and bool(second.assigned)


async def test_a_consumer_fenced_by_a_newer_epoch_rolls_back_and_starts_over(
    engine: AsyncEngine,
) -> None:
    broker, sessions, handler = MemoryBroker(partitions=1), session_factory(engine), Handler()
    spine = _spine(broker, sessions, handler)
    first = _produce(broker, 10)
    restarts_before = _restarts()
    async with _running(spine):
        await _until(lambda: _has_all(engine, 10), "the first records stored")
        handler.gate.clear()
        second = _produce(broker, 10, start=10)
        await handler.in_batch.wait()
        handler.in_batch.clear()
        async with sessions() as session, session.begin():  # another replica claims it
            await claim_partitions(session, offsets, GROUP, {TopicPartition(TOPIC, 0)})
        handler.gate.set()
        await _until(lambda: _has_all(engine, 20), "the batch stored after the restart")

    assert sorted(await _stored(engine)) == sorted(first + second)  # the fenced try left nothing
    async with sessions() as session:
        epoch = await session.scalar(select(offsets.c.epoch))
    assert epoch == 3  # claimed by us, by the other replica, then by us again after the restart
    assert _restarts() == restarts_before + 1


async def test_a_poison_record_in_a_batch_of_300_is_rejected_and_the_rest_stored_once(
    engine: AsyncEngine,
) -> None:
    broker, sessions, handler = MemoryBroker(partitions=1), session_factory(engine), Handler()
    values = _produce(broker, 300)
    handler.poison = {values[137]}
    async with _running(_spine(broker, sessions, handler)):
        await _until(lambda: _count(engine, rejected), "the poison record rejected")
        await _until(lambda: _has_all(engine, 299), "the others stored")

    assert sorted(await _stored(engine)) == sorted(set(values) - {values[137]})
    async with sessions() as session:
        assert (await session.execute(select(rejected))).all() == [(137, values[137])]
        stored = await session.scalar(select(offsets.c.next_offset))
    assert stored == 300


async def test_after_a_database_outage_the_consumer_restarts_from_the_stored_positions(
    engine: AsyncEngine,
) -> None:
    broker, sessions, handler = MemoryBroker(partitions=2), session_factory(engine), Handler()
    spine = _spine(broker, sessions, handler)
    first = _produce(broker, 20)
    async with _running(spine):
        await _until(lambda: _has_all(engine, 20), "the first records stored")
        handler.outage = True
        handler.in_batch.clear()
        second = _produce(broker, 20, start=20)
        await handler.in_batch.wait()
        await _until(lambda: _restarting(spine), "the consumer restarting")
        handler.outage = False
        await _until(lambda: _has_all(engine, 40), "the rest stored after the outage")

    assert sorted(await _stored(engine)) == sorted(first + second)
    assert await _count(engine, rejected) == 0  # an outage blames no record


async def _restarting(spine: Consumer[AsyncSession]) -> bool:
    checks = await spine._readiness.evaluate()
    return checks["consumer"] != "ok"
