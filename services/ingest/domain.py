"""What ingest accepts, and why it rejects what it does not. Pure: no I/O.

Every input shape (native, Segment, Stripe, CloudEvents, raw Kafka records) is
turned into a list of items, one per record, each either a normalised
:class:`~shared.events.Event` or a :class:`Rejection` with a machine-readable
:class:`Reason`. The I/O shell publishes the events and dead-letters the rejections.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import orjson
from pydantic import ValidationError

from services.ingest.reasons import Reason
from services.ingest.schemas import EventIn
from shared.events import MAX_PROPERTIES_DEPTH, Event, json_problem

MAX_BODY_DEPTH = MAX_PROPERTIES_DEPTH + 8
"""How deep a body may nest: an event's properties plus room for the batch, the
event and its envelope (Segment's context, a CloudEvent's data). Deeper bodies are
refused whole, before anything walks or re-encodes them."""


@dataclass(frozen=True)
class Rejection:
    """One record (or a whole body) that is not accepted, with its original bytes."""

    reason: Reason
    message: str
    original: bytes
    details: tuple[Mapping[str, str], ...] = ()
    """Each invalid field, as {field, reason}."""
    account_id: str | None = None
    event_id: str | None = None
    size: int | None = None
    """Size of the original when ``original`` is only its beginning."""


@dataclass(frozen=True)
class Held:
    """A record accepted but kept back until what it needs arrives: a Segment call
    waiting for its user's ``group`` call. Published then, or dead-lettered."""

    user_id: str
    message_id: str
    original: bytes


Item = Event | Rejection | Held


class BodyRejected(Exception):
    """The body as a whole cannot be read: nothing in it is accepted."""

    def __init__(self, rejection: Rejection) -> None:
        super().__init__(rejection.message)
        self.rejection = rejection


@dataclass(frozen=True)
class Limits:
    max_events: int = 2500
    max_event_bytes: int = 32 * 1024
    max_future: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class Parsed:
    """The items of a body in order; ``batch`` is False for a single posted event."""

    items: list[Item]
    batch: bool = True


def load_json(body: bytes) -> Any:
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BodyRejected(
            Rejection(Reason.malformed_json, f"body is not valid JSON: {exc}", body)
        ) from exc
    if (problem := json_problem(document, MAX_BODY_DEPTH, int64=False)) is not None:
        raise BodyRejected(Rejection(Reason.invalid_body, f"body is {problem}", body))
    return document


def item_bytes(item: object) -> bytes:
    """An item of a parsed batch as JSON again: what its size limit and dead letter use."""
    return orjson.dumps(item)


def too_large(original: bytes, limits: Limits) -> Rejection | None:
    if len(original) <= limits.max_event_bytes:
        return None
    message = f"event is {len(original)} bytes; the limit is {limits.max_event_bytes}"
    return Rejection(Reason.event_too_large, message, original)


# Set by Vitals on the stored event, never by a sender.
STORED_ONLY = frozenset({"received_at", "schema_version"})

# The model's validator itself, as ``Event.model_validate`` calls it: that method's
# keyword arguments cost about half a microsecond on every event.
_validate_event = Event.__pydantic_validator__.validate_python


def check_count(count: int, body: bytes, limits: Limits) -> None:
    if count > limits.max_events:
        message = f"{count} events in one request; the limit is {limits.max_events}"
        raise BodyRejected(Rejection(Reason.too_many_events, message, body))


def to_event(
    fields: Mapping[str, object],
    original: bytes,
    received_at: datetime,
    limits: Limits,
    default_event_id: str | None = None,
) -> Item:
    """Validate sender-supplied ``fields`` into a normalised event, or say why not.

    One validation, as the stored event with Vitals' own fields set: a sender may not
    set those, so fields that name one are validated as input first, for its error."""
    if not fields.keys().isdisjoint(STORED_ONLY):  # two lookups, not one per field
        try:
            EventIn.model_validate(fields)
        except ValidationError as exc:
            return invalid(exc, original, fields)
    event_id = fields.get("event_id")
    if event_id is None:
        event_id = default_event_id or str(uuid.uuid4())
    try:  # an id derived from the source (a CloudEvent's, a Stripe event's) is checked here
        event: Event = _validate_event({**fields, "event_id": event_id, "received_at": received_at})
    except ValidationError as exc:
        return invalid(exc, original, fields)
    return check_time(event, original, received_at, limits)


def check_time(event: Event, original: bytes, received_at: datetime, limits: Limits) -> Item:
    """Events from the future are refused; late ones pass (scoring decides what is late)."""
    if event.occurred_at <= received_at + limits.max_future:
        return event
    ahead = (event.occurred_at - received_at).total_seconds()
    message = (
        f"occurred_at {event.occurred_at.isoformat()} is {ahead:.0f}s after it was received; "
        f"at most {limits.max_future.total_seconds():.0f}s ahead is accepted"
    )
    return Rejection(
        Reason.event_in_future, message, original, (), event.account_id, event.event_id
    )


def invalid(exc: ValidationError, original: bytes, fields: Mapping[str, object]) -> Rejection:
    details = tuple(
        {"field": field_path(e["loc"]) or "(event)", "reason": e["msg"]}
        for e in exc.errors(include_url=False)
    )
    names = ", ".join(str(d["field"]) for d in details[:5])
    return Rejection(
        Reason.invalid_event,
        f"{len(details)} invalid field(s): {names}",
        original,
        details,
        _text(fields.get("account_id")),
        _text(fields.get("event_id")),
    )


def field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
