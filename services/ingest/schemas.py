"""Request and response shapes of the ingest API."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from shared.events import EventFields, Identifier


class EventIn(EventFields):
    """One event as a sender posts it; ``event_id`` is generated when absent."""

    event_id: Identifier | None = Field(
        None, description="Idempotency key: send the same id when retrying the same event."
    )


class EventBatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: list[EventIn] = Field(min_length=1)


class IngestAccepted(BaseModel):
    accepted: int = Field(description="Events stored on the broker.")
    event_ids: list[str] = Field(description="Their ids, in request order.")
