"""The consume spine on real Kafka and PostgreSQL: a record that breaks its handler is
dead-lettered and the partition moves on; a consumer that stops moving says so."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from sqlalchemy import Column, Integer, MetaData, Table, Text, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from shared.background import running
from shared.commit import DatabaseOffsets
from shared.consumer import Consumer, Records
from shared.db import create_engine, session_factory
from shared.health import Readiness
from shared.kafka import ensure_topics, make_consumer, topic_spec
from shared.offsets import consumer_offsets_table
from shared.settings import VitalsSettings
from tests.support.kafka import produce_many
from tests.support.own_broker import OwnBroker
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

metadata = MetaData()
applied_rows = Table(
    "applied", metadata, Column("value", Text, primary_key=True), Column("offset", Integer)
)
rejected_rows = Table(
    "rejected",
    metadata,
    Column("partition", Integer, primary_key=True),
    Column("offset", Integer, primary_key=True),
    Column("problem", Text),
)
offsets = consumer_offsets_table(metadata, "offsets", fenced=True)
GROUP = "poison-test"


@dataclass
class TextHandler:
    """Stores each record's value as text. ``boom`` raises in Python; a value with a
    NUL is refused by PostgreSQL itself; ``hold`` waits until released."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    forgotten: int = 0

    async def apply(self, session: AsyncSession, records: Records) -> None:
        for record in records:
            value = (record.value or b"").decode()
            if value == "boom":
                raise ValueError("boom")
            if value == "hold":
                await self.release.wait()
            statement = insert(applied_rows).values(value=value, offset=record.offset)
            await session.execute(statement)

    async def reject(self, session: AsyncSession, record: ConsumerRecord, problem: str) -> None:
        row = {"partition": record.partition, "offset": record.offset, "problem": problem}
        await session.execute(insert(rejected_rows).values(row))

    async def after_commit(self) -> None:
        pass

    def forget(self) -> None:
        self.forgotten += 1


@pytest.fixture
async def engine(database: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database)
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


def _settings(kafka: str) -> VitalsSettings:
    return VitalsSettings(
        kafka_bootstrap_servers=kafka, kafka_client_id_prefix="poison-test", topic_partitions=3
    )


async def _topic_with(kafka: str, topic: str, values: list[bytes]) -> None:
    """``topic`` with three partitions, holding ``values`` spread over them in order."""
    settings = _settings(kafka)
    await ensure_topics(settings, [topic_spec(settings, topic)])
    await produce_many(kafka, topic, [(f"k{i % 3}".encode(), v) for i, v in enumerate(values)])


def _consumer(
    kafka: str,
    topic: str,
    engine: AsyncEngine,
    handler: TextHandler,
    readiness: Readiness,
    broker_silent_after_s: float = 30.0,
) -> Consumer[AsyncSession]:
    settings = _settings(kafka)
    return Consumer(
        name="poison-test",
        topics=[topic],
        group_id=GROUP,
        make_consumer=lambda: make_consumer(settings, "poison-test", GROUP),
        commit=DatabaseOffsets(session_factory(engine), offsets, GROUP),
        handler=handler,
        readiness=readiness,
        max_records=500,
        retry_max_s=1.0,
        stalled_after_s=0.5,
        stuck_after_s=1.5,
        broker_silent_after_s=broker_silent_after_s,
    )


async def _count(engine: AsyncEngine, table: Table) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.count()).select_from(table)) or 0)


async def _stored_offset(engine: AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(await connection.scalar(select(func.sum(offsets.c.next_offset))) or 0)


async def test_records_that_break_the_handler_are_dead_lettered_once_and_the_rest_applied_once(
    kafka: str, engine: AsyncEngine, topics: dict[str, str]
) -> None:
    topic = topics["events_topic"]
    values = [f"good-{i}" for i in range(300)]
    values[57], values[201] = "boom", "nul\x00byte"
    await _topic_with(kafka, topic, [v.encode() for v in values])
    readiness = Readiness("consumer")
    handler = TextHandler()
    consumer = _consumer(kafka, topic, engine, handler, readiness)

    async with running(consumer.run(), "poison-test", readiness):

        async def settled() -> bool:
            return await _stored_offset(engine) == len(values)

        await wait_for(settled, 60, "every record applied or rejected")
        checks = await readiness.evaluate()
        async with engine.connect() as connection:
            rejected = (await connection.execute(select(rejected_rows.c.problem))).scalars().all()
            applied = (await connection.execute(select(applied_rows.c.value))).scalars().all()

    assert len(rejected) == 2, rejected
    assert "ValueError: boom" in rejected
    assert any("invalid byte sequence" in p for p in rejected), rejected  # PostgreSQL's refusal
    assert sorted(applied) == sorted(v for v in values if v.startswith("good-"))
    assert set(checks.values()) == {"ok"}, checks
    assert readiness.liveness() == {}


async def test_a_consumer_that_stops_moving_turns_not_ready_then_not_alive_then_recovers(
    kafka: str, engine: AsyncEngine, topics: dict[str, str]
) -> None:
    topic = topics["events_topic"]
    await _topic_with(kafka, topic, [b"first", b"hold", b"last"])
    readiness = Readiness("consumer")
    handler = TextHandler()
    consumer = _consumer(kafka, topic, engine, handler, readiness)

    async with running(consumer.run(), "poison-test", readiness):

        async def not_ready() -> str | None:
            problem = (await readiness.evaluate())["progress"]
            return problem if problem.startswith("no progress") else None

        stalled = await wait_for(not_ready, 30, "/readyz to say the consumer stalled")

        async def not_alive() -> dict[str, str]:
            return readiness.liveness()

        stuck = await wait_for(not_alive, 30, "/healthz to say the consumer is stuck")
        handler.release.set()

        async def recovered() -> bool:
            ready = set((await readiness.evaluate()).values()) == {"ok"}
            return ready and not readiness.liveness() and await _count(engine, applied_rows) == 3

        await wait_for(recovered, 30, "the consumer to move again")

    assert "records waiting" in stalled
    assert "restart the process" in stuck["poison-test"]


async def test_a_consumer_whose_broker_stops_answering_is_not_ready_until_it_is_back(
    engine: AsyncEngine, topics: dict[str, str], tmp_path: Path
) -> None:
    broker = OwnBroker(tmp_path)
    await broker.start()
    try:
        topic = topics["events_topic"]
        await _topic_with(broker.bootstrap, topic, [b"first"])
        readiness = Readiness("consumer")
        consumer = _consumer(broker.bootstrap, topic, engine, TextHandler(), readiness, 2.0)

        async def ready() -> bool:
            return set((await readiness.evaluate()).values()) == {"ok"}

        async with running(consumer.run(), "poison-test", readiness):
            await wait_for(lambda: _applied(engine, 1), 60, "the first record")
            await wait_for(ready, 30, "the consumer to be ready")
            await broker.stop()

            async def broker_silent() -> str | None:
                problem = (await readiness.evaluate())["broker"]
                return problem if problem.startswith("no answer from the broker") else None

            silent = await wait_for(broker_silent, 30, "/readyz to say the broker is silent")
            await broker.start()
            await wait_for(ready, 90, "the consumer to be ready again")
    finally:
        await broker.stop()

    assert silent.endswith("s")


async def _applied(engine: AsyncEngine, count: int) -> bool:
    return await _count(engine, applied_rows) == count
