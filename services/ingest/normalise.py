"""Turn a posted body into normalised events. Pure: bytes in, events or errors out."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from services.ingest.schemas import EventBatchIn, EventIn
from shared.events import Event


class InvalidPayload(Exception):
    """The body cannot be accepted; ``errors`` name each field and what is wrong."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []


def parse_payload(body: bytes, max_events: int) -> list[EventIn]:
    """One event, or ``{"events": [...]}``; all valid, or nothing."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidPayload(f"body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise InvalidPayload('body must be a JSON object: one event or {"events": [...]}')
    try:
        if "events" in document:
            events = EventBatchIn.model_validate(document).events
        else:
            events = [EventIn.model_validate(document)]
    except ValidationError as exc:
        errors = [_describe(error) for error in exc.errors(include_url=False)]
        fields = ", ".join(e["field"] for e in errors[:5])
        raise InvalidPayload(f"{len(errors)} invalid field(s): {fields}", errors) from exc
    if len(events) > max_events:
        raise InvalidPayload(f"{len(events)} events in one request; the limit is {max_events}")
    return events


def normalise(event: EventIn, received_at: datetime) -> Event:
    event_id = event.event_id or str(uuid.uuid4())
    fields = event.model_dump(exclude={"event_id"})
    return Event.model_validate({**fields, "event_id": event_id, "received_at": received_at})


def _describe(error: Any) -> dict[str, Any]:
    return {"field": _field_path(error["loc"]) or "(body)", "reason": error["msg"]}


def _field_path(location: tuple[int | str, ...]) -> str:
    path = ""
    for part in location:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path
