"""Kafka plumbing on aiokafka: topic creation, an idempotent producer and a
manually committed consumer with a rebalance listener.

Connecting is retried in the background so that a service starts, and reports
what is missing on ``/readyz``, while the broker is still away.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, MessageSizeTooLargeError

from shared.retry import Backoff
from shared.settings import VitalsSettings

log = logging.getLogger(__name__)

TOPIC_ALREADY_EXISTS = 36
PUBLISH_TIMEOUT_S = 10.0
TOPIC_VISIBLE_TIMEOUT_S = 30.0
PRODUCER_BATCH_BYTES = 16_384  # aiokafka's default, set so the limits below can rely on it
BATCH_FRAMING_BYTES = 100  # a record batch's header (61 bytes) and one record's framing
MAX_MESSAGE_BYTES = "max.message.bytes"
DEFAULT_MAX_MESSAGE_BYTES = 1_048_588  # Kafka's default for a topic
TOPIC_AUTHORIZATION_FAILED = 29


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time: nothing may be assumed stored."""


RECORD_FAULT = MessageSizeTooLargeError
"""What a record is refused for before anything is sent: larger than a request may be
(the producer's ``max_request_size``) or than its topic takes (``max.message.bytes``,
checked by ``send_each``). Sending it again can never succeed, while the records beside
it can. Anything else, above all what the broker answers, is taken for an outage: the
broker answers per batch of a partition, and a refused batch leaves the idempotent
producer's sequence with a gap, so nothing of it may be blamed on one record. So the
broker's own size check is made before sending, where it can name the record."""


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    replication_factor: int
    config: dict[str, str] = field(default_factory=dict)


def topic_spec(settings: VitalsSettings, name: str, *, compacted: bool = False) -> TopicSpec:
    config = {"cleanup.policy": "compact"} if compacted else {}
    return TopicSpec(name, settings.topic_partitions, settings.topic_replication_factor, config)


async def ensure_topics(settings: VitalsSettings, specs: Iterable[TopicSpec]) -> None:
    """Create the topics that do not exist yet; existing ones are left as they are."""
    admin = _admin(settings)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config)
            for s in specs
            if s.name not in existing
        ]
        if missing:
            response = await admin.create_topics(missing)
            for topic, code, *message in response.topic_errors:
                if code not in (0, TOPIC_ALREADY_EXISTS):
                    raise KafkaError(f"cannot create topic {topic}: error {code} {message}")
                log.info("topic created", extra={"topic": topic})
        await wait_until_served(admin, [s.name for s in specs])
    finally:
        await admin.close()


def _admin(settings: VitalsSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-admin",
    )


async def wait_until_served(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Return once the broker's metadata shows every topic with a leader per partition.

    A created topic reaches the broker's metadata a moment after the controller
    acknowledged it. A consumer that subscribes in between is told the topic does
    not exist and, with aiokafka, waits for its next metadata refresh (five minutes)
    before it is assigned anything."""
    deadline = asyncio.get_running_loop().time() + TOPIC_VISIBLE_TIMEOUT_S
    while True:
        waiting = [t["topic"] for t in await admin.describe_topics(names) if not _served(t)]
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise KafkaError(f"topics not served by the broker yet: {', '.join(waiting)}")
        await asyncio.sleep(0.1)


def _served(topic: dict[str, Any]) -> bool:
    partitions = topic["partitions"]
    return (
        topic["error_code"] == 0
        and bool(partitions)
        and all(p["error_code"] == 0 and p["leader"] >= 0 for p in partitions)
    )


def make_producer(settings: VitalsSettings, role: str) -> AIOKafkaProducer:
    """An idempotent producer that waits for all in-sync replicas."""
    return AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-{role}",
        acks="all",
        enable_idempotence=True,
        linger_ms=2,
        max_batch_size=PRODUCER_BATCH_BYTES,
        request_timeout_ms=int(PUBLISH_TIMEOUT_S * 1000),
    )


class TopicLimits:
    """The largest record batch each topic takes (its ``max.message.bytes``), read from
    the broker when first needed and again after an outage, so a limit an operator
    lowered is learnt at the first batch the broker refuses for it."""

    def __init__(self, read: Callable[[str], Awaitable[int]]) -> None:
        self._read = read
        self._known: dict[str, int] = {}

    @classmethod
    def from_broker(cls, settings: VitalsSettings) -> TopicLimits:
        return cls(lambda topic: read_max_message_bytes(settings, topic))

    async def of(self, topic: str) -> int:
        if topic not in self._known:
            try:
                self._known[topic] = await self._read(topic)
            except (KafkaError, OSError, TimeoutError) as exc:
                raise BrokerUnavailable(f"{MAX_MESSAGE_BYTES} of {topic} not read: {exc}") from exc
        return self._known[topic]

    def forget(self, topic: str) -> None:
        self._known.pop(topic, None)


async def read_max_message_bytes(settings: VitalsSettings, topic: str) -> int:
    """The topic's ``max.message.bytes``, its own or the broker's default."""
    admin = _admin(settings)
    await admin.start()
    try:
        asked = ConfigResource(ConfigResourceType.TOPIC, topic, {MAX_MESSAGE_BYTES: None})
        (response,) = await asyncio.wait_for(admin.describe_configs([asked]), PUBLISH_TIMEOUT_S)
    finally:
        await admin.close()
    ((code, message, _, _, entries),) = response.resources
    values = {entry[0]: entry[1] for entry in entries}
    if code == TOPIC_AUTHORIZATION_FAILED:
        log.warning(
            "not allowed to describe %s (the DescribeConfigs ACL); assuming Kafka's default "
            "%s of %d bytes",
            topic,
            MAX_MESSAGE_BYTES,
            DEFAULT_MAX_MESSAGE_BYTES,
        )
        return DEFAULT_MAX_MESSAGE_BYTES
    if code != 0 or MAX_MESSAGE_BYTES not in values:
        raise KafkaError(f"describe configs of {topic}: error {code} {message}")
    return int(values[MAX_MESSAGE_BYTES])


async def send_each(
    producer: AIOKafkaProducer,
    topic: str,
    records: list[tuple[bytes, bytes]],
    max_message_bytes: int,
    timeout_s: float = PUBLISH_TIMEOUT_S,
) -> list[KafkaError | None]:
    """Send (key, value) records to a topic that takes batches up to
    ``max_message_bytes``; for each, None once the broker acknowledged it, or the
    ``RECORD_FAULT`` it was refused for before sending. Any other failure raises
    ``BrokerUnavailable``: nothing may be assumed stored.

    To a topic that takes less than the producer's batches, records go one at a time,
    so no batch of them is larger than a single one."""
    faults: list[KafkaError | None] = [None] * len(records)
    futures: list[asyncio.Future[Any]] = []
    one_at_a_time = max_message_bytes < PRODUCER_BATCH_BYTES + BATCH_FRAMING_BYTES
    try:
        for i, (key, value) in enumerate(records):
            try:
                _check_fits(topic, key, value, max_message_bytes)
                futures.append(await producer.send(topic, value=value, key=key))
            except RECORD_FAULT as exc:
                faults[i] = exc
                continue
            if one_at_a_time:
                await asyncio.wait_for(futures[-1], timeout_s)
        await asyncio.wait_for(asyncio.gather(*futures), timeout_s)
    except (KafkaError, TimeoutError) as exc:
        raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc
    return faults


def _check_fits(topic: str, key: bytes, value: bytes, max_message_bytes: int) -> None:
    size = len(key) + len(value) + BATCH_FRAMING_BYTES
    if size > max_message_bytes:
        raise RECORD_FAULT(
            f"the record takes {size} bytes in a batch; {topic} takes at most "
            f"{max_message_bytes} ({MAX_MESSAGE_BYTES})"
        )


def make_consumer(
    settings: VitalsSettings, role: str, group_id: str, **overrides: object
) -> AIOKafkaConsumer:
    """A consumer whose positions are committed by the service, never automatically."""
    return AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=f"{settings.kafka_client_id_prefix}-{role}",
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **overrides,
    )


PartitionsCallback = Callable[[set[TopicPartition]], Awaitable[None]]


class RebalanceListener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Forwards rebalances: flush on revoke, load state and seek on assign."""

    def __init__(self, on_assigned: PartitionsCallback, on_revoked: PartitionsCallback) -> None:
        self._on_assigned = on_assigned
        self._on_revoked = on_revoked

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._on_revoked(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self._on_assigned(set(assigned))


async def start_with_retry(
    name: str,
    start: Callable[[], Awaitable[None]],
    report: Callable[[str | None], None],
    max_delay_s: float,
) -> None:
    """Call ``start`` until it succeeds, reporting each failure.

    Success is not reported: a caller with several steps says when all are done.
    """
    backoff = Backoff(max_delay_s=max_delay_s)
    while True:
        try:
            await start()
        except (KafkaError, OSError) as exc:
            delay = backoff.next_delay()
            report(f"unreachable: {type(exc).__name__}: {exc}")
            log.warning("%s not reachable, retrying in %.1fs: %s", name, delay, exc)
            await asyncio.sleep(delay)
        else:
            return
