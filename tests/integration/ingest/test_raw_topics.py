"""Records produced to real raw topics come out on the events topic or the DLQ."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import RecordMetadata
from prometheus_client import REGISTRY

from services.ingest.dedupe import DatabaseDeduplicator
from services.ingest.intake import Intake
from services.ingest.publisher import EventPublisher
from services.ingest.raw_topics import RAW_CONSUMER, RawTopicsConfig, raw_topic_consumer
from services.ingest.settings import IngestSettings
from services.ingest.sources.segment.store import SegmentDatabase
from shared.background import running
from shared.consumer import Consumer
from shared.db import SessionFactory, create_engine, session_factory
from shared.dlq import DeadLetter
from shared.events import Event
from shared.health import Readiness
from shared.kafka import ensure_topics, topic_spec
from shared.metrics import exposition
from tests.support.events import native_usage_json
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.processes import metric_total
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@pytest.fixture
def settings(kafka: str, topics: dict[str, str], database: str) -> IngestSettings:
    return ingest_test_settings(kafka=kafka, topics=topics, database=database)


@pytest.fixture
async def config(settings: IngestSettings) -> RawTopicsConfig:
    """Two raw topics of the test's own, created with several partitions."""
    prefix = settings.events_topic
    config = RawTopicsConfig(
        topics=(f"{prefix}.usage.raw", f"{prefix}.billing.raw"), group_id=f"{prefix}-raw"
    )
    await ensure_topics(settings, [topic_spec(settings, t) for t in config.topics])
    return config


@pytest.fixture
async def sessions(settings: IngestSettings) -> AsyncIterator[SessionFactory]:
    engine = create_engine(await migrated(settings.ingest_database_url))
    yield session_factory(engine)
    await engine.dispose()


@asynccontextmanager
async def consuming(
    settings: IngestSettings,
    config: RawTopicsConfig,
    sessions: SessionFactory,
    publisher: EventPublisher | None = None,
    readiness: Readiness | None = None,
) -> AsyncIterator[Consumer[None]]:
    """The raw-topic consumer on the shared intake, as the ingest app runs them;
    a given ``publisher`` is the test's to start."""
    own_publisher = publisher is None
    publisher = publisher or EventPublisher(settings, Readiness("kafka"))
    window = timedelta(seconds=settings.ingest_dedupe_window_s)
    dedupe = DatabaseDeduplicator(sessions, window, settings.dedupe_lease(), _now)
    intake = Intake(publisher, dedupe, "ingest@test")
    segment = SegmentDatabase(timedelta(seconds=settings.ingest_segment_wait_s), _now)
    consumer = raw_topic_consumer(settings, config, intake, segment, _now, readiness)
    if own_publisher:
        publisher.start()
    consumer.start()
    try:
        async with running(consumer.lag_probe(settings).run(), "ingest-raw-lag"):
            yield consumer
    finally:
        await consumer.stop()
        await publisher.stop()


def _now() -> datetime:
    return datetime.now(UTC)


async def produce(
    kafka: str, topic: str, values: list[bytes], key: bytes | None = b"same-partition"
) -> list[RecordMetadata]:
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        return [await producer.send_and_wait(topic, value, key=key) for value in values]
    finally:
        await producer.stop()


async def partitions_of(kafka: str, topics: Sequence[str]) -> list[TopicPartition]:
    """The partitions of ``topics`` that exist now."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        described = await admin.describe_topics(list(topics))
    finally:
        await admin.close()
    return [
        TopicPartition(topic["topic"], partition["partition"])
        for topic in described
        for partition in topic["partitions"]
    ]


async def read_all(kafka: str, topic: str) -> list[ConsumerRecord]:
    """Every record on ``topic`` now, from the beginning to its end offsets."""
    partitions = await partitions_of(kafka, [topic])
    if not partitions:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[ConsumerRecord] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            batch = await consumer.getmany(timeout_ms=500)
            records.extend(r for rs in batch.values() for r in rs)
        return records
    finally:
        await consumer.stop()


async def committed_to_the_end(kafka: str, config: RawTopicsConfig) -> bool:
    """Whether the consumer group committed every raw record produced so far."""
    partitions = await partitions_of(kafka, config.topics)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await consumer.start()
    await admin.start()
    try:
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(config.group_id)
    finally:
        await admin.close()
        await consumer.stop()
    return all(
        end == 0 or (tp in committed and committed[tp].offset == end) for tp, end in ends.items()
    )


async def event_ids(kafka: str, settings: IngestSettings) -> list[str]:
    return [
        Event.from_bytes(r.value).event_id for r in await read_all(kafka, settings.events_topic)
    ]


async def dead_letters(kafka: str, settings: IngestSettings) -> list[DeadLetter]:
    return [DeadLetter.from_bytes(r.value) for r in await read_all(kafka, settings.dlq_topic)]


def _json(document: Any) -> bytes:
    return orjson.dumps(document)


def _segment(call_type: str, **fields: Any) -> bytes:
    return _json({"type": call_type, "userId": "u1", **fields})


async def test_each_shape_becomes_events_and_every_rejection_names_its_record(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    usage, billing = config.topics
    poison = b'{"account_id": "acme", "kind": '
    cloud_event = {"specversion": "1.0", "id": "c-1", "source": "/x", "type": "used"}
    no_id = {key: value for key, value in cloud_event.items() if key != "id"}
    cloud_events = [{**cloud_event, "accountid": "acme", "data": {}}, {**no_id, "data": {}}]
    batch = {"events": [native_usage_json(event_id="n-2"), native_usage_json(kind="nonsense")]}
    sent = await produce(
        kafka,
        usage,
        [
            _json(native_usage_json(event_id="n-1")),
            _json(batch),
            poison,
            _segment("group", groupId="acme", messageId="g-1", traits={"plan": "pro"}),
            _segment("track", event="Report Exported", messageId="t-1"),
            _json(cloud_events),
            _json(native_usage_json(event_id="n-3")),
        ],
    )
    segment_batch = {"batch": [_json_call("t-2")], "context": {"groupId": "globex"}}
    billing_event = native_usage_json(
        event_id="b-1", kind="billing", name="plan.changed", billing={"plan": "pro", "seats": 5}
    )
    await produce(kafka, billing, [_json(billing_event), _json(segment_batch)])

    async with consuming(settings, config, sessions):
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")
        await wait_for(lambda: _raw_lag_is(usage, 0), 30, "no lag left")

    expected = ["/x#c-1", "b-1", "g-1", "n-1", "n-2", "n-3", "t-1", "t-2"]
    assert sorted(await event_ids(kafka, settings)) == expected
    letters = {letter.offset: letter for letter in await dead_letters(kafka, settings)}
    assert {o: letter.reason for o, letter in letters.items()} == {
        sent[1].offset: "invalid_event",
        sent[2].offset: "malformed_json",
        sent[5].offset: "invalid_event",
    }
    for letter in letters.values():
        assert (letter.topic, letter.partition) == (usage, sent[0].partition)
        assert letter.source == f"kafka:{usage}/{letter.partition}@{letter.offset}"
    assert letters[sent[2].offset].original() == poison
    assert orjson.loads(letters[sent[5].offset].original()) == cloud_events[1]
    lag = REGISTRY.get_sample_value(
        "vitals_consumer_lag_records",
        {"consumer": RAW_CONSUMER, "topic": usage, "partition": str(sent[0].partition)},
    )
    assert lag == 0


async def test_a_segment_call_before_its_group_call_waits_for_it_across_batches(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    usage, _ = config.topics
    await produce(kafka, usage, [_segment("identify", userId="late", messageId="i-late")])

    async with consuming(settings, config, sessions):
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "the identify consumed")
        await produce(kafka, usage, [_segment("group", userId="late", groupId="acme")])
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "the group consumed")
        events = await wait_for(lambda: _events_of(kafka, settings, 2), 30, "both events")

    assert sorted((e.name, e.account_id) for e in events) == [
        ("account.traits", "acme"),
        ("user.identified", "acme"),
    ]
    assert await dead_letters(kafka, settings) == []


async def _events_of(kafka: str, settings: IngestSettings, count: int) -> list[Event] | None:
    found = [Event.from_bytes(r.value) for r in await read_all(kafka, settings.events_topic)]
    return found if len(found) >= count else None


def _json_call(message_id: str) -> dict[str, Any]:
    return {"type": "track", "userId": "u9", "event": "Seat Added", "messageId": message_id}


async def test_a_restart_mid_stream_loses_nothing_and_publishes_nothing_twice(
    kafka: str, settings: IngestSettings, sessions: SessionFactory
) -> None:
    prefix = settings.events_topic
    config = RawTopicsConfig(topics=(f"{prefix}.raw",), group_id=f"{prefix}-raw", max_records=5)
    await ensure_topics(settings, [topic_spec(settings, config.topics[0])])
    first = [
        _json(native_usage_json(event_id=f"e-{i}", account_id=f"a{i % 7}")) for i in range(300)
    ]
    await produce(kafka, config.topics[0], first, key=None)

    async with consuming(settings, config, sessions):
        await wait_for(lambda: event_ids(kafka, settings), 30, "the first events")
    stopped_at = len(await event_ids(kafka, settings))
    later = [_json(native_usage_json(event_id=f"e-{i}")) for i in range(300, 350)]
    await produce(kafka, config.topics[0], later, key=None)
    async with consuming(settings, config, sessions):
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")

    assert 0 < stopped_at < 300, "the first consumer should stop mid-stream"
    ids = await event_ids(kafka, settings)
    assert len(ids) == 350
    assert set(ids) == {f"e-{i}" for i in range(350)}


async def test_a_replay_of_a_raw_topic_publishes_no_event_again(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    usage = config.topics[0]
    records = [_json(native_usage_json(event_id=f"r-{i}")) for i in range(20)]
    records += [_json(native_usage_json()) for _ in range(5)]  # ids from their records
    await produce(kafka, usage, records, key=None)
    async with consuming(settings, config, sessions):
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")
    replay = config.model_copy(update={"group_id": f"{config.group_id}-replay"})

    async with consuming(settings, replay, sessions):
        await wait_for(lambda: committed_to_the_end(kafka, replay), 60, "the replay")

    ids = await event_ids(kafka, settings)
    assert len(ids) == len(set(ids)) == 25


@pytest.mark.filterwarnings("error::pytest.PytestUnraisableExceptionWarning")
async def test_a_topic_of_almost_only_rejects_stops_the_consumer_instead_of_draining(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    strict = config.model_copy(update={"max_rejected_ratio": 0.9, "rejected_window": 10})
    garbage = [f"not json {uuid.uuid4()}".encode() for _ in range(40)]
    await produce(kafka, strict.topics[0], garbage)
    readiness = Readiness()

    async with consuming(settings, strict, sessions, readiness=readiness) as consumer:
        await wait_for(lambda: _failed(consumer), 30, "the consumer to stop")
        checks = await readiness.evaluate()
        up = REGISTRY.get_sample_value("vitals_ingest_raw_intake_up", {"group": strict.group_id})

    assert consumer.failure is not None and "were rejected" in consumer.failure
    assert checks["raw_intake"] == f"stopped: {consumer.failure}"
    assert up == 0
    assert len(await dead_letters(kafka, settings)) < 10
    assert not await committed_to_the_end(kafka, strict)


async def test_a_stopped_raw_intake_turns_readyz_to_503_with_the_reason(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    strict = ingest_test_settings(
        kafka=kafka,
        topics=topics,
        database=await migrated(database),
        ingest_raw_max_rejected_ratio=0.9,
        ingest_raw_rejected_window=10,
    )
    raw_topic = strict.ingest_raw_topics.split(",")[0]
    async with ingest_client(strict) as client:
        await produce(kafka, raw_topic, [f"not json {n}".encode() for n in range(20)])

        async def not_ready() -> httpx.Response | None:
            response = await client.get("/readyz")
            return response if response.status_code == 503 else None

        answer = await wait_for(not_ready, 30, "/readyz to turn 503")
        metrics = (await client.get("/metrics")).text

    raw_intake = answer.json()["checks"]["raw_intake"]
    assert raw_intake.startswith("stopped: ") and "were rejected" in raw_intake, raw_intake
    group = strict.ingest_raw_consumer_group
    assert f'vitals_ingest_raw_intake_up{{group="{group}"}} 0.0' in metrics
    assert 'vitals_readiness_check_ok{check="raw_intake"} 0.0' in metrics
    assert 'vitals_readiness_check_ok{check="publishing"} 1.0' in metrics


async def test_the_raw_intake_lag_rises_while_it_is_stopped_and_falls_once_caught_up(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    topic = config.topics[0]
    strict = config.model_copy(update={"max_rejected_ratio": 0.9, "rejected_window": 10})
    await produce(kafka, topic, [f"not json {n}".encode() for n in range(20)])

    async with consuming(settings, strict, sessions) as consumer:
        await wait_for(lambda: _failed(consumer), 30, "the consumer to stop")
        await produce(kafka, topic, [_json(native_usage_json(event_id=f"e-{n}")) for n in range(5)])
        await wait_for(lambda: _raw_lag_is(topic, 25), 30, "the lag to count every record")
    everything = config.model_copy(update={"max_rejected_ratio": 1.0})
    async with consuming(settings, everything, sessions):
        await wait_for(lambda: _raw_lag_is(topic, 0), 60, "the lag to clear")

    assert sorted(await event_ids(kafka, settings)) == [f"e-{n}" for n in range(5)]


async def _raw_lag_is(topic: str, expected: int) -> bool:
    text = exposition().decode()
    lag = metric_total(text, "vitals_consumer_lag_records", consumer=RAW_CONSUMER, topic=topic)
    return lag == expected


async def _failed(consumer: Consumer[None]) -> bool:
    return consumer.failure is not None


async def test_records_wait_while_the_broker_does_not_acknowledge_and_none_is_skipped(
    kafka: str,
    settings: IngestSettings,
    config: RawTopicsConfig,
    sessions: SessionFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "shared.consumer")
    await produce(
        kafka, config.topics[0], [_json(native_usage_json(event_id=f"w-{i}")) for i in range(30)]
    )
    publisher = EventPublisher(settings, Readiness("kafka"))

    async with consuming(settings, config, sessions, publisher):
        await wait_for(lambda: _retried(caplog), 30, "a publish refused by the broker")
        publisher.start()
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")

    assert sorted(await event_ids(kafka, settings)) == sorted(f"w-{i}" for i in range(30))


async def _retried(caplog: pytest.LogCaptureFixture) -> bool:
    return any("ingest-raw consumer failed, retrying" in r.getMessage() for r in caplog.records)


async def test_two_replicas_share_the_partitions_and_each_event_comes_out_once(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    small_batches = config.model_copy(update={"max_records": 5})
    first = [
        _json(native_usage_json(event_id=f"s-{i}", account_id=f"a{i % 9}")) for i in range(200)
    ]
    await produce(kafka, config.topics[0], first, key=None)

    async with consuming(settings, small_batches, sessions) as first_replica:
        await wait_for(lambda: event_ids(kafka, settings), 30, "the first events")
        async with consuming(settings, small_batches, sessions) as second_replica:
            await wait_for(lambda: _sharing(first_replica, second_replica), 30, "a rebalance")
            later = [_json(native_usage_json(event_id=f"s-{i}")) for i in range(200, 300)]
            await produce(kafka, config.topics[0], later, key=None)
            await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")

    ids = await event_ids(kafka, settings)
    assert len(ids) == 300
    assert set(ids) == {f"s-{i}" for i in range(300)}


async def _sharing(first: Consumer[None], second: Consumer[None]) -> bool:
    return bool(first.assigned and second.assigned) and not first.assigned & second.assigned


def _nested_event(event_id: str, depth: int) -> bytes:
    """A native event whose properties nest ``depth`` levels (JSON encoders stop at 255)."""
    deep = b'{"a":' * depth + b"1" + b"}" * depth
    return _json(native_usage_json(event_id=event_id, properties="deep")).replace(b'"deep"', deep)


class ExplodingPublisher(EventPublisher):
    """The real publisher, with a fault of ours injected for one event id."""

    async def publish(self, events: Sequence[Event], letters: Sequence[DeadLetter] = ()) -> None:
        if any(event.event_id == "explodes" for event in events):
            raise RuntimeError("a fault while publishing")
        await super().publish(events, letters)


async def test_poison_records_are_dead_lettered_with_their_reason_and_the_partition_moves_on(
    kafka: str, settings: IngestSettings, config: RawTopicsConfig, sessions: SessionFactory
) -> None:
    usage = config.topics[0]
    poison = {
        "deep-300": _nested_event("deep-300", 300),
        "deep-36": _nested_event("deep-36", 36),
        "nul-id": _json(native_usage_json(event_id="nul\x00id")),
        "year-1": _json(native_usage_json(event_id="y1", occurred_at="0001-01-01T00:00:00+14:00")),
        "explodes": _json(native_usage_json(event_id="explodes")),
        "mrr": _json(
            native_usage_json(
                event_id="mrr",
                kind="billing",
                name="plan.changed",
                billing={"mrr_minor": 2**63, "currency": "USD"},
            )
        ),
    }
    good = [_json(native_usage_json(event_id=f"good-{i}")) for i in range(4)]
    sent = await produce(kafka, usage, good[:2] + list(poison.values()) + good[2:])
    readiness = Readiness()
    publisher = ExplodingPublisher(settings, Readiness("kafka"))
    publisher.start()

    async with consuming(settings, config, sessions, publisher, readiness):
        await wait_for(lambda: committed_to_the_end(kafka, config), 60, "every record consumed")
        checks = await readiness.evaluate()

    assert sorted(await event_ids(kafka, settings)) == [f"good-{i}" for i in range(4)]
    letters = {letter.offset: letter for letter in await dead_letters(kafka, settings)}
    reasons = {name: letters[sent[2 + i].offset].reason for i, name in enumerate(poison)}
    assert reasons == {
        "deep-300": "invalid_body",
        "deep-36": "invalid_event",
        "nul-id": "invalid_event",
        "year-1": "invalid_event",
        "explodes": "processing_failed",
        "mrr": "invalid_event",
    }
    assert "RuntimeError: a fault while publishing" in letters[sent[6].offset].message
    assert letters[sent[2].offset].original() == poison["deep-300"]
    assert checks == {"raw_intake": "ok"}
