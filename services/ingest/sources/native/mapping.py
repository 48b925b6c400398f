"""The native shape of ``POST /v1/events``: one event, or ``{"events": [...]}``. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from services.ingest.domain import (
    BodyRejected,
    Item,
    Limits,
    Parsed,
    Rejection,
    check_count,
    item_bytes,
    load_json,
    to_event,
    too_large,
)
from services.ingest.reasons import Reason


def parse_native(body: bytes, received_at: datetime, limits: Limits) -> Parsed:
    """Every item of the body, in order, each an event or a rejection."""
    document: object = load_json(body)
    if not isinstance(document, dict):
        raise BodyRejected(
            Rejection(
                Reason.invalid_body,
                'body must be a JSON object: one event or {"events": [...]}',
                body,
            )
        )
    if "events" not in document:
        if len(body) > limits.max_event_bytes:
            return Parsed([too_large_item(body, limits)], batch=False)
        return Parsed([to_event(document, body, received_at, limits)], batch=False)
    items = _batch_items(document, body)
    check_count(len(items), body, limits)
    return Parsed([native_item(item, received_at, limits) for item in items])


def native_item(item: object, received_at: datetime, limits: Limits) -> Item:
    original = item_bytes(item)
    if (oversized := too_large(original, limits)) is not None:
        return oversized
    if not isinstance(item, dict):
        return Rejection(Reason.invalid_event, "an event must be a JSON object", original)
    return to_event(item, original, received_at, limits)


def too_large_item(original: bytes, limits: Limits) -> Rejection:
    rejection = too_large(original, limits)
    assert rejection is not None
    return rejection


def _batch_items(document: Mapping[str, object], body: bytes) -> list[object]:
    items = document["events"]
    extra = sorted(set(document) - {"events"})
    if extra:
        message = f'a batch is {{"events": [...]}} only; unexpected: {", ".join(extra)}'
        raise BodyRejected(Rejection(Reason.invalid_body, message, body))
    if not isinstance(items, list) or not items:
        message = '"events" must be a non-empty list of events'
        raise BodyRejected(Rejection(Reason.invalid_body, message, body))
    return items
