"""Every reason ingest rejects a body or a record for: the ``reason`` of its dead letter."""

from __future__ import annotations

from enum import StrEnum


class Reason(StrEnum):
    """Why a body or a record was rejected; the ``reason`` of its dead letter."""

    unsupported_media_type = "unsupported_media_type"
    body_too_large = "body_too_large"
    malformed_json = "malformed_json"
    invalid_body = "invalid_body"
    too_many_events = "too_many_events"
    event_too_large = "event_too_large"
    invalid_event = "invalid_event"
    event_in_future = "event_in_future"
    unknown_account = "unknown_account"
    unsupported_type = "unsupported_type"
    processing_failed = "processing_failed"
