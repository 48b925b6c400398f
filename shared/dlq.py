"""The dead-letter contract: what goes to ``vitals.events.dlq``.

Nothing Vitals rejects is dropped silently: the original bytes (truncated past
``MAX_ORIGINAL_BYTES``, with the full size kept), where they came from, when, which
processor rejected them, a machine-readable reason and a message for people.
Keyed by account id when one is known, else by the source, so a replay tool can
re-post the originals in order.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Literal, TypeVar

import orjson
from aiokafka import ConsumerRecord
from prometheus_client import Counter
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import CONTROL_CHARACTERS, UtcDatetime

log = logging.getLogger(__name__)

MAX_ORIGINAL_BYTES = 64 * 1024
MAX_MESSAGE_CHARS = 4000
MAX_SOURCE_CHARS = 300
T = TypeVar("T")


def processor_name(service: str) -> str:
    """What a dead letter names as its processor: the service and Vitals' version."""
    try:
        return f"{service}@{version('vitals')}"
    except PackageNotFoundError:
        return f"{service}@unknown"


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    reason: str = Field(
        max_length=64, description="Machine-readable, e.g. invalid_event, too_late."
    )
    message: str = Field(max_length=MAX_MESSAGE_CHARS, description="What is wrong, for people.")
    source: str = Field(
        max_length=MAX_SOURCE_CHARS,
        description='"http:/v1/track" or "kafka:topic/partition@offset".',
    )
    topic: str | None = Field(None, max_length=249)
    partition: int | None = None
    offset: int | None = None
    rejected_at: UtcDatetime
    processor: str = Field(
        max_length=100, description="Service and version that rejected it, e.g. ingest@0.1.0"
    )
    account_id: str | None = Field(None, max_length=300)
    event_id: str | None = Field(None, max_length=300)
    original_b64: str = Field(
        max_length=4 * -(-MAX_ORIGINAL_BYTES // 3),
        description="The original bytes, base64, maybe truncated.",
    )
    original_size: int = Field(ge=0, description="Size of the original in bytes.")
    truncated: bool

    @classmethod
    def of(
        cls,
        original: bytes,
        *,
        reason: str,
        message: str,
        source: str,
        rejected_at: datetime,
        processor: str,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        account_id: str | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        kept = original[:MAX_ORIGINAL_BYTES]
        return cls(
            reason=reason,
            message=_bounded(message, MAX_MESSAGE_CHARS),
            source=_bounded(source, MAX_SOURCE_CHARS),
            topic=topic,
            partition=partition,
            offset=offset,
            rejected_at=rejected_at,
            processor=processor,
            account_id=_storable(account_id),
            event_id=_storable(event_id),
            original_b64=base64.b64encode(kept).decode(),
            original_size=len(original),
            truncated=len(kept) < len(original),
        )

    @classmethod
    def of_record(
        cls,
        record: ConsumerRecord,
        *,
        reason: str,
        message: str,
        rejected_at: datetime,
        processor: str,
        account_id: str | None = None,
        event_id: str | None = None,
    ) -> DeadLetter:
        """A consumed record's dead letter; the account is the record's key unless given."""
        if account_id is None and record.key:
            account_id = record.key.decode(errors="replace")
        return cls.of(
            record.value or b"",
            reason=reason,
            message=message,
            source=f"kafka:{record.topic}/{record.partition}@{record.offset}",
            rejected_at=rejected_at,
            processor=processor,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            account_id=account_id,
            event_id=event_id,
        )

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    def key(self) -> bytes:
        return (self.account_id or self.source).encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        return cls.model_validate_json(raw)


def _bounded(text: str, most: int) -> str:
    """A text a dead letter can always carry: one that is too long ends with an ellipsis."""
    return text if len(text) <= most else text[: most - 1] + "\u2026"


def _storable(text: str | None) -> str | None:
    """An id as a dead letter can carry it into a database and a log; the original
    bytes keep it exactly."""
    return None if text is None else CONTROL_CHARACTERS.sub("\ufffd", text)[:300]


def validation_summary(exc: ValidationError, most: int = 5) -> str:
    """The fields a record failed on and why, bounded, without echoing the input."""
    errors = exc.errors(include_url=False, include_input=False)
    parts = [
        f"{'.'.join(str(p) for p in e['loc']) or '(record)'}: {e['msg']}" for e in errors[:most]
    ]
    more = f" (and {len(errors) - most} more)" if len(errors) > most else ""
    return "; ".join(parts) + more


class InvalidRecord(ValueError):
    """A consumed record that is not a valid message of its topic's contract: its
    ``problem`` goes into its dead letter, and it is never retried."""

    def __init__(self, record: ConsumerRecord, problem: str) -> None:
        super().__init__(problem)
        self.record = record
        self.problem = problem


def decode_record(
    record: ConsumerRecord, parse: Callable[[bytes], T], what: str, unreadable: Counter
) -> T:
    """``parse`` of a consumed record's value, or ``InvalidRecord`` saying why it is not a
    valid ``what`` of the contract (counted in ``unreadable`` and logged with its
    position). The topic is written by Vitals only: a bad record means an older producer
    or a stray write, and is dead-lettered, never retried."""
    try:
        return parse(record.value or b"")
    except ValidationError as exc:
        unreadable.inc()
        why = validation_summary(exc)
        where = f"{record.topic}/{record.partition}@{record.offset}"
        log.error("unreadable %s at %s dead-lettered: %s", what, where, why)
        raise InvalidRecord(record, f"not a valid {what} of the contract: {why}") from exc


def dead_letter_records(letters: Iterable[DeadLetter]) -> list[tuple[bytes, bytes]]:
    """(key, value) records of ``letters`` to send to the DLQ topic."""
    return [(letter.key(), letter.to_bytes()) for letter in letters]
