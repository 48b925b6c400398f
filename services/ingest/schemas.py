"""Request and response shapes of the ingest API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

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
    details: list[dict[str, object]] | None = Field(
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
