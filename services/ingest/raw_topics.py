"""Kafka intake: raw topics carrying native, Segment or CloudEvents JSON.

Each record is decoded (pure: shape, size, parse), mapped exactly as the HTTP
routes map the same body, and handed to the shared :class:`Intake`. A JSON object
with ``specversion`` is a structured CloudEvent, a JSON array of them a CloudEvents
batch; an object with ``batch`` or a Segment call ``type`` is Segment; any other
object is native (one event or ``{"events": [...]}``).

The raw intake is a handler on the consume spine (``shared.consumer``). A batch's
offsets are committed to Kafka only after the broker acknowledged its events and dead
letters (``shared.commit.KafkaCommit``), so delivery is at least once; the intake's
dedupe by ``event_id`` turns a redelivery into a duplicate that is not published
again. Events without an id get one derived from their record, so a redelivered
record yields the same ids. A record that cannot be used is dead-lettered with its
topic, partition and offset and never holds its partition up: when submitting a batch
fails for any reason but a transient one (the broker or the database away), its
records are submitted one at a time (``OneAtATime``) and the one that still fails is
dead-lettered with the error (its events may already be on the topic once; consumers
drop repeats by ``event_id``).

The consumer's state is on ``/readyz`` as ``raw_intake`` and in the metric
``vitals_ingest_raw_intake_up``; its designed stop (too many rejected items, a
``Halt``) turns both, with the reason, until an operator fixes the producer and
restarts ingest.
"""

from __future__ import annotations

import hashlib
import logging
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from functools import partial
from typing import Any

from aiokafka import ConsumerRecord
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlalchemy.ext.asyncio import AsyncSession

from services.ingest import metrics
from services.ingest.domain import BodyRejected, Item, Limits, Rejection, load_json
from services.ingest.intake import Intake, Origin, Prepared
from services.ingest.reasons import Reason
from services.ingest.settings import IngestSettings
from services.ingest.sources.cloudevents.mapping import parse_cloudevents
from services.ingest.sources.native.mapping import parse_native
from services.ingest.sources.segment import mapping as segment
from services.ingest.sources.segment.service import Accepted, Calls, SegmentStore, accept
from services.ingest.sources.segment.store import SegmentDatabase, database_store, forgetting
from shared.clock import Clock, utc_now
from shared.commit import KafkaCommit
from shared.consumer import Consumer, Halt, OneAtATime, Records, Watch
from shared.errors import describe
from shared.events import MAX_ID_LENGTH, Event
from shared.health import Readiness
from shared.kafka import ensure_topics, make_consumer, topic_spec

log = logging.getLogger(__name__)

CHANNEL = "kafka"
WAITED_ORIGIN = Origin("kafka: a Segment call that waited for its group call")
DEFAULT_TOPICS = ("vitals.usage.raw", "vitals.billing.raw")
DEFAULT_GROUP = "vitals-ingest-raw"
# Its name among the consumers: Kafka client ids, the lag series' `consumer` label.
RAW_CONSUMER = "ingest-raw"


class RawTopicsConfig(BaseModel):
    """What the raw-topic consumer reads and how far it lets a broken producer go."""

    model_config = ConfigDict(frozen=True)

    topics: tuple[str, ...] = Field(DEFAULT_TOPICS, description="Raw topics; empty = off.")
    group_id: str = Field(DEFAULT_GROUP, min_length=1)
    max_records: int = Field(500, ge=1, description="Most records handled in one batch.")
    max_rejected_ratio: float = Field(
        0.9, gt=0, le=1, description="Share of rejected items that stops the consumer; 1 = never."
    )
    rejected_window: int = Field(
        1000, ge=1, description="How many recent items the rejected share is measured over."
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(topic.strip() for topic in value.split(",") if topic.strip())
        return value


class Shape(StrEnum):
    native = "native"
    segment = "segment"
    cloudevents = "cloudevents"


class TooManyRejected(Halt):
    """Almost every recent item was rejected: a producer upstream is likely broken."""


@dataclass(frozen=True)
class RawRecord:
    """What decoding needs of a consumed record."""

    topic: str
    partition: int
    offset: int
    value: bytes | None
    timestamp_ms: int = -1

    @classmethod
    def of(cls, record: ConsumerRecord) -> RawRecord:
        return cls(record.topic, record.partition, record.offset, record.value, record.timestamp)

    def origin(self) -> Origin:
        return Origin.kafka(self.topic, self.partition, self.offset)


@dataclass(frozen=True)
class Decoded:
    """A record's items, or the Segment calls still to map (they need stored users)."""

    record: RawRecord
    received_at: datetime
    items: list[Item] = field(default_factory=list)
    calls: list[Any] | None = None
    batch: bool = False


def shape_of(document: Any) -> Shape | None:
    """The input shape of a record's JSON, or None when it is none of them."""
    if isinstance(document, list):
        envelopes = any(isinstance(e, dict) and "specversion" in e for e in document)
        return Shape.cloudevents if envelopes else None
    if not isinstance(document, dict):
        return None
    if "specversion" in document:
        return Shape.cloudevents
    if "batch" in document or (isinstance(document.get("type"), str) and "kind" not in document):
        return Shape.segment
    return Shape.native


def received_time(record: RawRecord, now: datetime) -> datetime:
    """When the record reached the raw topic; never later than ``now``.

    The record's own time keeps a lagging or replayed topic's events (Segment's clock
    skew correction, the future check) as they were when they arrived, and makes a
    redelivery map to the same event.
    """
    if record.timestamp_ms < 0:
        return now
    return min(datetime.fromtimestamp(record.timestamp_ms / 1000, UTC), now)


def decode(record: RawRecord, limits: Limits, max_record_bytes: int, now: datetime) -> Decoded:
    """The record's items, or why the record as a whole is rejected."""
    received_at = received_time(record, now)
    try:
        return _decode(record, limits, max_record_bytes, received_at)
    except BodyRejected as exc:
        rejection = exc.rejection
        kept = replace(rejection, original=segment.redact_write_key(rejection.original))
        return Decoded(record, received_at, [kept])


def _decode(
    record: RawRecord, limits: Limits, max_record_bytes: int, received_at: datetime
) -> Decoded:
    body = record.value
    if body is None:
        raise BodyRejected(Rejection(Reason.invalid_body, "record has no value", b""))
    if len(body) > max_record_bytes:
        message = f"record is {len(body)} bytes; the limit is {max_record_bytes}"
        raise BodyRejected(Rejection(Reason.body_too_large, message, body))
    document = load_json(body)
    shape = shape_of(document)
    if shape is None:
        message = (
            "record must be a JSON object (a native event or batch, a Segment call or batch, "
            "a CloudEvent) or a JSON array of CloudEvents"
        )
        raise BodyRejected(Rejection(Reason.invalid_body, message, body))
    if shape is Shape.cloudevents:
        batch = isinstance(document, list)
        parsed = parse_cloudevents(body, received_at, limits, batch=batch)
        return Decoded(record, received_at, parsed.items, batch=batch)
    if shape is Shape.segment:
        call_type = None if "batch" in document else str(document["type"])
        read = segment.read_body(body, call_type, limits)
        return Decoded(record, received_at, calls=read.messages, batch=read.batch)
    parsed = parse_native(body, received_at, limits)
    sources = document["events"] if parsed.batch else [document]
    given = [native_event_id(source) for source in sources]
    items = with_record_ids(parsed.items, given, record, batch=parsed.batch)
    return Decoded(record, received_at, items, batch=parsed.batch)


def with_record_ids(
    items: Sequence[Item], given: Sequence[str | None], record: RawRecord, *, batch: bool
) -> list[Item]:
    """Events whose sender gave no id (``given`` None) get one derived from the record."""
    result: list[Item] = []
    for index, (item, sent_id) in enumerate(zip(items, given, strict=True)):
        if isinstance(item, Event) and sent_id is None:
            derived = record_event_id(record, index if batch else None)
            item = item.model_copy(update={"event_id": derived})
        result.append(item)
    return result


def record_event_id(record: RawRecord, index: int | None) -> str:
    text = f"kafka:{record.topic}/{record.partition}@{record.offset}"
    text += "" if index is None else f"#{index}"
    if len(text) <= MAX_ID_LENGTH:
        return text
    return f"kafka:{hashlib.sha256(text.encode()).hexdigest()}"


def native_event_id(event: Any) -> str | None:
    value = event.get("event_id") if isinstance(event, dict) else None
    return value if isinstance(value, str) else None


def segment_message_id(message: Any) -> str | None:
    """The id Segment mapping takes from a call, if any (as ``segment`` reads it)."""
    value = message.get("messageId") if isinstance(message, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return value if isinstance(value, str) and value.strip() else None


def map_segment(decoded: Sequence[Decoded], store: SegmentStore, limits: Limits) -> Accepted:
    """Segment calls of each record accepted in order (a group call informs later
    records); events without an id get one from their record, and a record that breaks
    mapping is dead-lettered alone."""
    bodies = [Calls(d.calls or [], d.received_at) for d in decoded]
    accepted = accept(bodies, store, limits, isolate_faults=True)
    items: list[list[Item]] = []
    for index, (record, found) in enumerate(zip(decoded, accepted.items, strict=True)):
        if index in accepted.faults:
            items.append([unreadable(record.record, accepted.faults[index])])
        else:
            given = [segment_message_id(call) for call in record.calls or []]
            items.append(with_record_ids(found, given, record.record, batch=record.batch))
    accepted.items = items
    return accepted


class RejectedShare:
    """The share of rejected items over the last ``window``; trips past ``max_ratio``."""

    def __init__(self, max_ratio: float, window: int) -> None:
        self._max_ratio = max_ratio
        self._recent: deque[bool] = deque(maxlen=window)

    def check(self, rejected: Sequence[bool]) -> None:
        """Count a batch in, or raise ``TooManyRejected`` leaving the count as it was."""
        candidate = deque(self._recent, maxlen=self._recent.maxlen)
        candidate.extend(rejected)
        if len(candidate) == candidate.maxlen:
            share = sum(candidate) / len(candidate)
            if share > self._max_ratio:
                raise TooManyRejected(
                    f"{share:.0%} of the last {len(candidate)} raw items were rejected "
                    f"(limit {self._max_ratio:.0%}): a producer upstream looks broken. "
                    "Stopped without committing; fix the producer, or raise "
                    "VITALS_INGEST_RAW_MAX_REJECTED_RATIO (1 = never stop) to dead-letter them."
                )
        self._recent = candidate


class RawIntake:
    """The raw intake's handler on the consume spine: each batch's records decoded and
    submitted to the shared intake, which publishes their events and dead letters and
    waits for the broker's acknowledgement before the spine commits the offsets."""

    def __init__(
        self,
        settings: IngestSettings,
        config: RawTopicsConfig,
        intake: Intake,
        segment: SegmentDatabase,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._intake = intake
        self._segment = segment
        self._clock = clock
        self._limits = settings.limits()
        self._share = RejectedShare(config.max_rejected_ratio, config.rejected_window)

    async def apply(self, unit: None, records: Records) -> None:
        await self._submit([RawRecord.of(r) for r in records])

    async def reject(self, unit: None, record: ConsumerRecord, problem: str) -> None:
        """A record whose submitting failed on its own: dead-lettered with the error (its
        events may already be on the topic once; consumers drop repeats by event id)."""
        raw = RawRecord.of(record)
        message = f"record could not be handled: {problem}"
        redacted = segment.redact_write_key(raw.value or b"")
        rejection = Rejection(Reason.processing_failed, message, redacted)
        await self._intake.submit([(rejection, raw.origin())], CHANNEL)

    async def after_commit(self) -> None:
        return None  # what a batch produced was published before it counted as stored

    def forget(self) -> None:
        return None  # nothing kept between batches

    async def _submit(self, records: Sequence[RawRecord]) -> None:
        now = self._clock()
        max_bytes = self._settings.ingest_max_body_bytes
        decoded = [_decode_safely(r, self._limits, max_bytes, now) for r in records]
        if all(d.calls is None for d in decoded):
            await self._intake.submit(self._checked(decoded), CHANNEL)
            return
        prepare = partial(self._map_segment_calls, decoded)
        await self._intake.submit_prepared(prepare, CHANNEL)

    async def _map_segment_calls(self, decoded: list[Decoded], session: AsyncSession) -> Prepared:
        """Segment calls need the stored user -> account map, and a group call releases
        the calls that waited for it in earlier batches: read, mapped and kept in the
        transaction that claims the batch's event ids."""
        calls = [d for d in decoded if d.calls is not None]
        messages = [message for d in calls for message in d.calls or []]
        async with database_store(session, messages, self._segment) as store:
            mapped = map_segment(calls, store, self._limits)
        items = dict(zip([id(d) for d in calls], mapped.items, strict=True))
        decoded = [replace(d, items=items[id(d)]) if id(d) in items else d for d in decoded]
        waited = [(item, WAITED_ORIGIN) for item in mapped.released]
        return Prepared([*self._checked(decoded), *waited], forgetting(mapped))

    def _checked(self, decoded: Sequence[Decoded]) -> list[tuple[Item, Origin]]:
        """The records' items, unless too many of them are rejected."""
        items = [(item, d.record.origin()) for d in decoded for item in d.items]
        self._share.check([isinstance(item, Rejection) for item, _ in items])
        return items


def raw_topic_consumer(
    settings: IngestSettings,
    config: RawTopicsConfig,
    intake: Intake,
    segment: SegmentDatabase,
    clock: Clock = utc_now,
    readiness: Readiness | None = None,
) -> Consumer[None]:
    """The raw intake on the consume spine: offsets committed to Kafka once a batch's
    events and dead letters are acknowledged, a failed batch searched one record at a
    time (its effects are not one transaction), its state on ``/readyz`` as
    ``raw_intake`` and in ``vitals_ingest_raw_intake_up``."""

    def report_up(problem: str | None) -> None:
        metrics.RAW_INTAKE_UP.labels(config.group_id).set(1 if problem is None else 0)

    async def create_topics() -> None:
        await ensure_topics(settings, [topic_spec(settings, topic) for topic in config.topics])

    return Consumer(
        name=RAW_CONSUMER,
        topics=config.topics,
        group_id=config.group_id,
        make_consumer=lambda: make_consumer(settings, RAW_CONSUMER, config.group_id),
        commit=KafkaCommit(),
        handler=RawIntake(settings, config, intake, segment, clock),
        readiness=readiness or Readiness(),
        isolation=OneAtATime(),
        watch=Watch(state="raw_intake", broker=None, stalls=False, on_state=report_up),
        prepare=create_topics,
        max_records=config.max_records,
        retry_max_s=settings.startup_retry_max_s,
    )


def _decode_safely(record: RawRecord, limits: Limits, max_bytes: int, now: datetime) -> Decoded:
    try:
        return decode(record, limits, max_bytes, now)
    except Exception as exc:  # a poison record must not block its partition
        return Decoded(record, now, [unreadable(record, exc)])


def unreadable(
    record: RawRecord, exc: Exception, reason: Reason = Reason.invalid_body
) -> Rejection:
    """A record that broke decoding, mapping or submitting, to dead-letter; the fault
    is logged once, with its traceback."""
    log.error("raw record %s could not be handled", record.origin().source, exc_info=exc)
    message = f"record could not be handled: {describe(exc)}"
    return Rejection(reason, message, segment.redact_write_key(record.value or b""))
