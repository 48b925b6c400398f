"""The outbox relay's failure policy, on an in-memory table and producer: a record the
producer refuses as too large is dead-lettered and the rest go on; whatever the broker
refuses, and an outage, mark nothing; the backlog is exported and a stuck one named on
readiness; one relay's outage or backlog holds no other back."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, MessageSizeTooLargeError
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory
from shared.dlq import DeadLetter
from shared.health import Readiness
from shared.kafka import BrokerUnavailable, TopicLimits, send_each
from shared.metrics import PUBLISHER_OLDEST_AGE_SECONDS, PUBLISHER_PENDING_ROWS
from shared.outbox import Backlog, OutboxRecord, OutboxRelay, Refusals, Relaying, drain_all

NOW = datetime(2026, 12, 7, 12, tzinfo=UTC)
LIMIT = 100  # the fake producer's largest request
POISON = b"poison"  # refused by the fake broker, with every record of its batch
TOPIC_DOWN = "vitals.down"  # a topic the fake broker answers nothing for
TOPIC_LIMIT = 1_000_000  # what the fake broker's topics take, unless a test says less


class FakeProducer:
    """Refuses a value over ``LIMIT`` when sent, as aiokafka does; acknowledges batches
    (what was sent since the last acknowledgement) on the next loop turn, refusing a
    whole batch that holds ``POISON`` as a broker answers per partition batch."""

    def __init__(self, outage: bool = False) -> None:
        self.outage = outage
        self.delivered: list[bytes] = []
        self.batch_sizes: list[int] = []
        self._batch: list[tuple[bytes, asyncio.Future[None]]] = []

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if len(value) > LIMIT:
            raise MessageSizeTooLargeError(f"{len(value)} bytes")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if topic == TOPIC_DOWN:
            future.set_exception(KafkaConnectionError("broker gone"))
            return future
        if not self._batch:
            asyncio.get_running_loop().call_soon(self._acknowledge)
        self._batch.append((value, future))
        return future

    def _acknowledge(self) -> None:
        batch, self._batch = self._batch, []
        self.batch_sizes.append(len(batch))
        poisoned = any(value == POISON for value, _ in batch)
        for value, future in batch:
            if self.outage:
                future.set_exception(KafkaConnectionError("broker gone"))
            elif poisoned:
                future.set_exception(MessageSizeTooLargeError("batch over max.message.bytes"))
            else:
                self.delivered.append(value)
                future.set_result(None)


class MemoryTable:
    def __init__(self, values: Sequence[bytes]) -> None:
        self.rows = {i: v for i, v in enumerate(values, start=1)}
        self.sent: set[int | str] = set()
        self.created_at = NOW - timedelta(minutes=10)

    async def claim(self, session: AsyncSession, limit: int) -> list[OutboxRecord]:
        waiting = [i for i in sorted(self.rows) if i not in self.sent][:limit]
        return [OutboxRecord(i, f"acct-{i}".encode(), self.rows[i]) for i in waiting]

    async def mark_sent(
        self, session: AsyncSession, row_ids: list[int | str], now: datetime
    ) -> None:
        self.sent.update(row_ids)

    async def backlog(self, session: AsyncSession) -> Backlog:
        waiting = len(self.rows) - len(self.sent)
        return Backlog(waiting, self.created_at if waiting else None)


class FakeSession:
    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[None]:
        yield


def _sessions() -> SessionFactory:
    @contextlib.asynccontextmanager
    async def session() -> AsyncIterator[FakeSession]:
        yield FakeSession()

    return cast(SessionFactory, session)


def _limits(*limits: int) -> TopicLimits:
    """Topic limits the broker answers in turn, the last one from then on."""
    answers = list(limits or (TOPIC_LIMIT,))

    async def read(_: str) -> int:
        return answers.pop(0) if len(answers) > 1 else answers[0]

    return TopicLimits(read)


def _relay(
    table: MemoryTable,
    letters: list[DeadLetter],
    readiness: Readiness | None = None,
    topic: str = "vitals.things",
    name: str = "things",
    limits: TopicLimits | None = None,
) -> OutboxRelay:
    async def stage(_: AsyncSession, staged: Sequence[DeadLetter], __: datetime) -> None:
        letters.extend(staged)

    relaying = Relaying(
        _sessions(),
        lambda: NOW,
        batch=3,
        limits=limits or _limits(),
        readiness=readiness,
        stuck_after_s=60,
    )
    return OutboxRelay(
        name,
        table,
        topic,
        relaying,
        refusals=Refusals(stage, "test@1"),
        counted=lambda _: None,
    )


def _producer(fake: FakeProducer) -> AIOKafkaProducer:
    return cast(AIOKafkaProducer, fake)


async def test_a_record_too_large_to_send_is_dead_lettered_and_the_rest_are_published() -> None:
    table = MemoryTable([b"a", b"x" * (LIMIT + 1), b"c", b"d"])
    letters: list[DeadLetter] = []
    producer = FakeProducer()

    await drain_all([_relay(table, letters)], _producer(producer))

    assert producer.delivered == [b"a", b"c", b"d"]
    assert table.sent == {1, 2, 3, 4}
    (letter,) = letters
    assert (letter.reason, letter.source, letter.account_id) == (
        "unpublishable",
        "outbox:things/2",
        "acct-2",
    )
    assert "MessageSizeTooLargeError" in letter.message
    assert letter.original() == b"x" * (LIMIT + 1)


async def test_a_batch_the_broker_refuses_is_an_outage_blamed_on_no_record() -> None:
    """The broker answers per batch, and a refused batch leaves the idempotent
    producer's sequence with a gap: no record of it can be blamed."""
    table = MemoryTable([b"a", POISON, b"c"])
    letters: list[DeadLetter] = []

    with pytest.raises(BrokerUnavailable, match="MessageSizeTooLargeError"):
        await drain_all([_relay(table, letters)], _producer(FakeProducer()))

    assert (table.sent, letters) == (set(), [])


async def test_a_record_larger_than_its_topic_takes_is_dead_lettered_before_sending() -> None:
    """The broker's own size check, made before sending where it can name the record."""
    table = MemoryTable([b"a", b"x" * 80, b"c"])
    letters: list[DeadLetter] = []
    producer = FakeProducer()

    await drain_all([_relay(table, letters, limits=_limits(150))], _producer(producer))

    assert producer.delivered == [b"a", b"c"]
    assert table.sent == {1, 2, 3}
    (letter,) = letters
    assert letter.source == "outbox:things/2"
    assert "takes at most 150 (max.message.bytes)" in letter.message


async def test_a_limit_lowered_under_a_waiting_record_costs_one_refused_batch() -> None:
    """The broker refuses the batch (an outage: nothing marked); the limit is read again,
    and the next attempt dead-letters the record that no longer fits."""
    table = MemoryTable([b"a", POISON, b"c"])
    letters: list[DeadLetter] = []
    relay = _relay(table, letters, limits=_limits(TOPIC_LIMIT, len(POISON) + 104))
    producer = FakeProducer()

    with pytest.raises(BrokerUnavailable, match="MessageSizeTooLargeError"):
        await drain_all([relay], _producer(producer))
    assert table.sent == set()
    await drain_all([relay], _producer(producer))

    assert producer.delivered == [b"a", b"c"]
    assert table.sent == {1, 2, 3}
    assert [letter.source for letter in letters] == ["outbox:things/2"]


async def test_to_a_topic_taking_less_than_a_producer_batch_records_go_one_at_a_time() -> None:
    table = MemoryTable([b"a", b"b", b"c"])
    producer = FakeProducer()

    await drain_all([_relay(table, [], limits=_limits(1_000))], _producer(producer))

    assert producer.delivered == [b"a", b"b", b"c"]
    assert producer.batch_sizes == [1, 1, 1]


async def test_a_limit_the_broker_does_not_answer_is_an_outage() -> None:
    async def unreachable(_: str) -> int:
        raise KafkaConnectionError("broker gone")

    table = MemoryTable([b"a"])
    relay = _relay(table, [], limits=TopicLimits(unreachable))

    with pytest.raises(BrokerUnavailable, match=r"max\.message\.bytes of vitals\.things not read"):
        await drain_all([relay], _producer(FakeProducer()))
    assert table.sent == set()


async def test_an_outage_marks_nothing_sent_and_dead_letters_nothing() -> None:
    table = MemoryTable([b"a", b"b"])
    letters: list[DeadLetter] = []

    with pytest.raises(BrokerUnavailable, match="KafkaConnectionError"):
        await drain_all([_relay(table, letters)], _producer(FakeProducer(outage=True)))

    assert (table.sent, letters) == (set(), [])


async def test_send_each_names_the_record_the_producer_refused_and_none_for_the_rest() -> None:
    records = [(b"k", b"a"), (b"k", b"x" * (LIMIT + 1)), (b"k", b"d")]

    faults = await send_each(_producer(FakeProducer()), "t", records, TOPIC_LIMIT)

    assert [type(f).__name__ if f else None for f in faults] == [
        None,
        "MessageSizeTooLargeError",
        None,
    ]


async def test_an_outage_of_one_relay_holds_no_other_back_and_is_raised_after() -> None:
    down, up = MemoryTable([b"a"]), MemoryTable([b"b", b"c", b"d", b"e"])
    relays = [_relay(down, [], topic=TOPIC_DOWN, name="down"), _relay(up, [], name="up")]
    producer = FakeProducer()

    with pytest.raises(BrokerUnavailable, match="KafkaConnectionError"):
        await drain_all(relays, _producer(producer))

    assert (down.sent, up.sent) == (set(), {1, 2, 3, 4})
    assert producer.delivered == [b"b", b"c", b"d", b"e"]


async def test_the_backlog_is_exported_and_a_stuck_one_named_until_it_drains() -> None:
    table = MemoryTable([b"a", b"b"])
    readiness = Readiness()
    relay = _relay(table, [], readiness)

    checks_stuck = await readiness.evaluate()  # the relay's probe reads the backlog
    stuck_gauge = _gauge(PUBLISHER_PENDING_ROWS)
    await drain_all([relay], _producer(FakeProducer()))

    assert stuck_gauge == 2
    assert checks_stuck[relay.check] == ("2 rows waiting for vitals.things, the oldest for 600s")
    assert (await readiness.evaluate())[relay.check] == "ok"  # read again: drained
    assert _gauge(PUBLISHER_PENDING_ROWS) == 0
    assert _gauge(PUBLISHER_OLDEST_AGE_SECONDS) == 0


def _gauge(gauge: Any) -> float:
    value: float = gauge.labels("things")._value.get()
    return value
