"""Request and response shapes of the ingest API."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel

from services.ingest.reasons import Reason
from shared.events import EventFields, Identifier


class EventIn(EventFields):
    """One event as a sender posts it; ``event_id`` is generated when absent."""

    event_id: Identifier | None = Field(
        None, description="Idempotency key: send the same id when retrying the same event."
    )


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1, max_length=2500)


class ItemError(BaseModel):
    index: int = Field(description="Position of the rejected item in the request, from 0.")
    reason: Reason = Field(description="Machine-readable reason; the dead letter carries it too.")
    message: str
    details: list[dict[str, Any]] | None = Field(
        None, description="Each invalid field, as {field, reason}."
    )


class IngestAccepted(BaseModel):
    accepted: int = Field(description="New events stored on the broker.")
    duplicates: int = Field(0, description="Events whose event_id was already stored.")
    rejected: int = Field(0, description="Items rejected and sent to the dead-letter topic.")
    event_ids: list[str] = Field(description="Ids of the new events, in request order.")
    errors: list[ItemError] = Field(
        default_factory=list, description="Why each rejected item was rejected."
    )


class CloudEventIn(BaseModel):
    """A CloudEvent 1.0 in structured JSON mode whose ``data`` is a native event."""

    model_config = ConfigDict(extra="allow")

    specversion: str = Field(pattern=r"^1\.0$")
    id: str = Field(min_length=1, description="With source, becomes event_id: source#id.")
    source: str = Field(min_length=1)
    type: str = Field(min_length=1, description="The event name when data has none.")
    time: AwareDatetime | None = Field(None, description="occurred_at when data has none.")
    datacontenttype: str | None = Field(None, description="application/json if given.")
    accountid: str | None = Field(None, description="Extension: account_id when data has none.")
    data: dict[str, Any] = Field(description="A native event; see EventIn.")


class CloudEventBatchIn(RootModel[list[CloudEventIn]]):
    """``application/cloudevents-batch+json``: a JSON array of CloudEvents."""
