"""The consume spine (``shared.consumer``) with the raw intake's policies, on a broker in
memory: offsets committed to Kafka after a batch's effects were stored elsewhere
(``KafkaCommit``), a failed batch searched one record at a time (``OneAtATime``), a
handler's designed stop (``Halt``), a restart after an outage and a rebalance, each
ending with every record's effect stored once. The raw intake runs the same on real
Kafka in tests/integration/ingest/test_raw_topics.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from shared.commit import KafkaCommit
from shared.consumer import Consumer, Halt, OneAtATime, Records, Watch
from shared.health import Readiness
from shared.kafka import BrokerUnavailable
from tests.support.memory_broker import MemoryBroker
from tests.support.servers import wait_for

TOPIC, GROUP = "vitals.raw", "raw-test"
TIMEOUT_S = 20


class Handler:
    """Stores each record's value in memory as its effect, one record at a time (as the
    raw intake's effects are not one transaction); refuses values in ``poison``; halts
    on ``halt``; fails like a broker away for the next ``outages`` batches."""

    def __init__(self) -> None:
        self.effects: Counter[bytes] = Counter()
        self.rejected: list[tuple[int, str]] = []
        self.poison: set[bytes] = set()
        self.halt: bytes | None = None
        self.outages = 0
        self.batches: list[int] = []

    async def apply(self, unit: None, records: Records) -> None:
        self.batches.append(len(records))
        if self.outages:
            self.outages -= 1
            raise BrokerUnavailable("no acknowledgement")
        if self.halt is not None and any(r.value == self.halt for r in records):
            raise Halt("almost every record rejected")
        if any(r.value in self.poison for r in records):
            raise ValueError("a record this handler cannot use")
        self.effects.update(r.value or b"" for r in records)

    async def reject(self, unit: None, record: ConsumerRecord, problem: str) -> None:
        self.rejected.append((record.offset, problem))

    async def after_commit(self) -> None:
        return None

    def forget(self) -> None:
        return None


def _spine(broker: MemoryBroker, handler: Handler, readiness: Readiness) -> Consumer[None]:
    def make() -> AIOKafkaConsumer:
        consumer: Any = broker.consumer(GROUP)
        return consumer  # the part of AIOKafkaConsumer the spine uses

    return Consumer(
        name="raw",
        topics=[TOPIC],
        group_id=GROUP,
        make_consumer=make,
        commit=KafkaCommit(),
        handler=handler,
        readiness=readiness,
        isolation=OneAtATime(),
        watch=Watch(state="raw_intake", broker=None, stalls=False),
        max_records=50,
        retry_max_s=0.05,
    )


@contextlib.asynccontextmanager
async def _running(*spines: Consumer[None]) -> AsyncIterator[None]:
    for spine in spines:
        spine.start()
    try:
        yield
    finally:
        for spine in spines:
            await spine.stop()


def _produce(broker: MemoryBroker, count: int, start: int = 0) -> list[bytes]:
    values = [f"v{i}".encode() for i in range(start, start + count)]
    for value in values:
        broker.produce(TOPIC, value, value)
    return values


async def _until(condition: Callable[[], Awaitable[Any]], what: str) -> Any:
    return await wait_for(condition, TIMEOUT_S, what, every_s=0.01)


def _committed_to(broker: MemoryBroker, end: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        ends = [len(log) for log in broker.logs.values()]
        committed = [broker.committed.get((GROUP, tp), 0) for tp in broker.logs]
        return sum(committed) == sum(ends) == end

    return check


async def test_offsets_are_committed_after_the_effects_and_a_restart_applies_nothing_twice() -> (
    None
):
    broker, handler = MemoryBroker(partitions=2), Handler()
    values = _produce(broker, 120)
    async with _running(_spine(broker, handler, Readiness())):
        await _until(_committed_to(broker, 120), "every record committed")
    more = _produce(broker, 30, start=120)
    async with _running(_spine(broker, handler, Readiness())):
        await _until(_committed_to(broker, 150), "the new records committed")

    assert handler.effects == Counter(values + more)  # each once, none from before again


async def test_a_poison_record_is_found_one_at_a_time_and_rejected_alone() -> None:
    broker, handler = MemoryBroker(partitions=1), Handler()
    values = _produce(broker, 40)
    handler.poison = {values[17]}
    async with _running(_spine(broker, handler, Readiness())):
        await _until(_committed_to(broker, 40), "every record committed")

    assert handler.effects == Counter(set(values) - {values[17]})
    assert [offset for offset, _ in handler.rejected] == [17]
    assert "ValueError: a record this handler cannot use" in handler.rejected[0][1]
    assert handler.batches[:2] == [40, 1]  # the whole batch, then record by record


async def test_an_outage_restarts_from_the_committed_positions_and_blames_no_record() -> None:
    broker, handler = MemoryBroker(partitions=2), Handler()
    first = _produce(broker, 20)
    async with _running(_spine(broker, handler, Readiness())):
        await _until(_committed_to(broker, 20), "the first records committed")
        handler.outages = 3
        second = _produce(broker, 20, start=20)
        await _until(_committed_to(broker, 40), "the rest committed after the outage")

    assert handler.effects == Counter(first + second)
    assert handler.rejected == []


async def test_a_halt_stops_consuming_for_good_with_its_reason_on_readiness() -> None:
    broker, handler, readiness = MemoryBroker(partitions=1), Handler(), Readiness()
    values = _produce(broker, 10)
    spine = _spine(broker, handler, readiness)
    async with _running(spine):
        await _until(_committed_to(broker, 10), "the first records committed")
        handler.halt = _produce(broker, 5, start=10)[0]
        await _until(lambda: _halted(spine), "the consumer to halt")
        checks = await readiness.evaluate()
        _produce(broker, 5, start=15)
        await asyncio.sleep(0)  # a halted consumer takes nothing more

    assert spine.failure == "almost every record rejected"
    assert checks["raw_intake"] == "stopped: almost every record rejected"
    assert handler.effects == Counter(values)
    assert broker.committed[(GROUP, TopicPartition(TOPIC, 0))] == 10  # the halting batch not
    assert not broker.members[GROUP]  # left the group


async def _halted(spine: Consumer[None]) -> bool:
    return spine.failure is not None


async def test_partitions_handed_over_in_a_rebalance_are_committed_first() -> None:
    broker = MemoryBroker(partitions=4)
    first_handler, second_handler = Handler(), Handler()
    values = _produce(broker, 200)
    first = _spine(broker, first_handler, Readiness())
    async with _running(first):
        await _until(lambda: _applied(first_handler, 50), "the first batches")
        async with _running(_spine(broker, second_handler, Readiness())):
            more = _produce(broker, 100, start=200)
            await _until(_committed_to(broker, 300), "every record committed")

    assert first_handler.effects + second_handler.effects == Counter(values + more)


async def _applied(handler: Handler, count: int) -> bool:
    return sum(handler.effects.values()) >= count
