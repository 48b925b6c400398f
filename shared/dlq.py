"""The dead-letter contract: what goes to ``vitals.events.dlq``.

Nothing Vitals rejects is dropped silently: the original bytes (truncated past
``MAX_ORIGINAL_BYTES``, with the full size kept), where they came from, when, which
processor rejected them, a machine-readable reason and a message for people.
Keyed by account id when one is known, else by the source, so a replay tool can
re-post the originals in order.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable
from datetime import datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.events import CONTROL_CHARACTERS, UtcDatetime

MAX_ORIGINAL_BYTES = 64 * 1024


def processor_name(service: str) -> str:
    """What a dead letter names as its processor: the service and Vitals' version."""
    try:
        return f"{service}@{version('vitals')}"
    except PackageNotFoundError:
        return f"{service}@unknown"


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    reason: str = Field(description="Machine-readable, e.g. invalid_event, too_late.")
    message: str = Field(description="What is wrong, for people.")
    source: str = Field(description='"http:/v1/track" or "kafka:topic/partition@offset".')
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    rejected_at: UtcDatetime
    processor: str = Field(description="Service and version that rejected it, e.g. ingest@0.1.0")
    account_id: str | None = None
    event_id: str | None = None
    original_b64: str = Field(description="The original bytes, base64, maybe truncated.")
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
            message=message,
            source=source,
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

    def original(self) -> bytes:
        return base64.b64decode(self.original_b64)

    def key(self) -> bytes:
        return (self.account_id or self.source).encode()

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> DeadLetter:
        return cls.model_validate_json(raw)


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


def dead_letter_records(letters: Iterable[DeadLetter]) -> list[tuple[bytes, bytes]]:
    """(key, value) records of ``letters`` for ``shared.kafka.send_all`` to the DLQ topic."""
    return [(letter.key(), letter.to_bytes()) for letter in letters]
