"""No way a consumer stops leaves a Kafka connection open (real Kafka): a stop between
batches, a designed stop (``Halt``), and a restart after an outage, each with the lag
probe running beside it. An aiokafka connection left open is reported when it is
collected (``AIOKafkaConnection.__del__``); these tests collect garbage before they end
and run with that report as an error, and check that no Kafka client's task still runs
(a client that was never stopped keeps its connections and is never collected)."""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
from aiokafka import ConsumerRecord

from shared.background import running
from shared.commit import KafkaCommit
from shared.consumer import Consumer, Halt, OneAtATime, Records, Watch
from shared.health import Readiness
from shared.kafka import BrokerUnavailable, ensure_topics, make_consumer, topic_spec
from shared.settings import VitalsSettings
from tests.support.kafka import produce_many
from tests.support.servers import wait_for

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning"),
    pytest.mark.filterwarnings("error::ResourceWarning"),
]


class Handler:
    """Counts values; raises ``failure`` once when a batch holds ``trigger``."""

    def __init__(self, trigger: bytes | None = None, failure: Exception | None = None) -> None:
        self.applied: list[bytes] = []
        self._trigger = trigger
        self._failure = failure

    async def apply(self, unit: None, records: Records) -> None:
        if self._failure and any(r.value == self._trigger for r in records):
            failure, self._failure = self._failure, None
            raise failure
        self.applied.extend(r.value or b"" for r in records)

    async def reject(self, unit: None, record: ConsumerRecord, problem: str) -> None:
        raise AssertionError(f"no record is bad here: {problem}")

    async def after_commit(self) -> None:
        return None

    def forget(self) -> None:
        return None


@asynccontextmanager
async def _consumer(kafka: str, handler: Handler) -> AsyncIterator[Consumer[None]]:
    """A consumer of a fresh topic holding ``v0``..``v9``, with its lag probe running."""
    settings = VitalsSettings(kafka_bootstrap_servers=kafka, kafka_client_id_prefix="stop-test")
    topic, group = f"stop-test.{uuid.uuid4().hex[:10]}", f"stop-test-{uuid.uuid4().hex[:8]}"
    await ensure_topics(settings, [topic_spec(settings, topic)])
    await produce_many(kafka, topic, [(b"k", f"v{i}".encode()) for i in range(10)])
    consumer = Consumer(
        name="stop-test",
        topics=[topic],
        group_id=group,
        make_consumer=lambda: make_consumer(settings, "stop-test", group),
        commit=KafkaCommit(),
        handler=handler,
        readiness=Readiness(),
        isolation=OneAtATime(),
        watch=Watch(state="intake", broker=None, stalls=False),
        retry_max_s=0.2,
    )
    consumer.start()
    try:
        async with running(consumer.lag_probe(settings).run(), "stop-test-lag"):
            yield consumer
    finally:
        await consumer.stop()
    gc.collect()  # a connection left open is reported now, inside the test
    assert _kafka_tasks() == []


def _kafka_tasks() -> list[str]:
    """Tasks of Kafka clients still running: a client not stopped keeps its connections."""
    running = [task.get_coro() for task in asyncio.all_tasks() if not task.done()]
    return [
        getattr(coro, "__qualname__", repr(coro))
        for coro in running
        if "aiokafka" in getattr(getattr(coro, "cr_code", None), "co_filename", "")
    ]


async def _until(condition: Callable[[], Awaitable[Any]], what: str) -> None:
    await wait_for(condition, 30, what)


def _applied(handler: Handler, count: int) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return len(handler.applied) >= count

    return check


async def test_a_stop_between_batches_closes_every_connection(kafka: str) -> None:
    handler = Handler()
    async with _consumer(kafka, handler):
        await _until(_applied(handler, 10), "every record applied")

    assert sorted(handler.applied) == sorted(f"v{i}".encode() for i in range(10))


async def test_a_designed_stop_closes_every_connection(kafka: str) -> None:
    handler = Handler(b"v0", Halt("a producer upstream looks broken"))
    async with _consumer(kafka, handler) as consumer:
        await _until(lambda: _halted(consumer), "the consumer to halt")

    assert consumer.failure == "a producer upstream looks broken"
    assert handler.applied == []


async def _halted(consumer: Consumer[None]) -> bool:
    return consumer.failure is not None


async def test_a_restart_after_an_outage_closes_the_connections_it_leaves(kafka: str) -> None:
    handler = Handler(b"v0", BrokerUnavailable("no acknowledgement"))
    async with _consumer(kafka, handler):
        await _until(_applied(handler, 10), "every record applied after the restart")

    assert sorted(handler.applied) == sorted(f"v{i}".encode() for i in range(10))
