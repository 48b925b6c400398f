"""CloudEvents as ``POST /v1/events`` documents them (structured mode, one or a batch)."""

from __future__ import annotations

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, RootModel


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
    data: dict[str, object] = Field(description="A native event; see EventIn.")


class CloudEventBatchIn(RootModel[list[CloudEventIn]]):
    """``application/cloudevents-batch+json``: a JSON array of CloudEvents."""
