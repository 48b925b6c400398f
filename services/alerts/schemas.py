"""Shapes of the alerts API: what it reads (…Read) and what it accepts (…Create)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.alerts.documents import JsonObject
from services.alerts.durations import Duration
from services.alerts.rules.engine import AlertState
from shared.scores import Tier


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    account_id: str
    rule: str
    episode: int
    state: AlertState
    severity: str
    health_score: int
    band: str
    tier: str | None
    risk: str | None
    segment: str | None
    owner_email: str | None
    owner_slack: str | None
    summary: str
    details: JsonObject | None
    opened_at: datetime
    resolved_at: datetime | None
    last_notified_at: datetime | None
    notifications: int
    acked_at: datetime | None
    acked_by: str | None
    snoozed_until: datetime | None
    account_name: str | None = Field(
        None, description="The account's name, from the score change that last moved it."
    )
    mrr_minor: int | None = Field(None, description="Its MRR then, in minor units.")
    currency: str | None = None

    @classmethod
    def of(cls, row: object) -> AlertRead:
        """An alert row with the account's name and MRR from its last event."""
        read = cls.model_validate(row)
        event = getattr(row, "last_event", None)
        account = event.get("account") if isinstance(event, dict) else None
        if isinstance(account, dict):
            name, mrr, currency = (
                account.get("name"),
                account.get("mrr_minor"),
                account.get("currency"),
            )
            read.account_name = name if isinstance(name, str) else None
            read.mrr_minor = mrr if isinstance(mrr, int) else None
            read.currency = currency if isinstance(currency, str) else None
        return read


class AlertList(BaseModel):
    alerts: list[AlertRead]
    next_cursor: str | None = Field(
        None, description="Pass as `cursor` for the next page; none after the last."
    )


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str | None = Field(None, max_length=200, description="Who acknowledged it.")


class SnoozeRequest(BaseModel):
    """Either ``until`` a time or ``for`` a duration like ``4h`` or ``3d``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    until: AwareDatetime | None = None
    for_: Duration | None = Field(None, alias="for")

    @model_validator(mode="after")
    def _one_of(self) -> SnoozeRequest:
        if (self.until is None) == (self.for_ is None):
            raise ValueError("give exactly one of until and for")
        return self


class SilenceCreate(BaseModel):
    """Mutes notices of matching alerts until ``ends_at``; at least one matcher."""

    model_config = ConfigDict(extra="forbid")

    account_id: str | None = Field(None, max_length=200)
    rule: str | None = Field(None, max_length=100)
    tier: Tier | None = None
    owner: str | None = Field(None, max_length=320, description="Owner CSM e-mail or handle.")
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    comment: str = Field("", max_length=2000)
    created_by: str = Field("", max_length=200)

    @model_validator(mode="after")
    def _matches_something(self) -> SilenceCreate:
        if not any((self.account_id, self.rule, self.tier, self.owner)):
            raise ValueError("a silence needs at least one of account_id, rule, tier, owner")
        if self.starts_at is not None and self.starts_at >= self.ends_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class SilenceRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    account_id: str | None
    rule: str | None
    tier: str | None
    owner: str | None
    starts_at: datetime | None
    ends_at: datetime
    comment: str
    created_by: str
    created_at: datetime


class SilenceList(BaseModel):
    silences: list[SilenceRead]


class ChannelRead(BaseModel):
    id: str
    kind: str
    source: Literal["file", "env", "api"]
    enabled: bool
    disabled_reason: str | None
    config: JsonObject = Field(description="The definition, secrets masked.")


class ChannelList(BaseModel):
    channels: list[ChannelRead]


class ChannelTestResult(BaseModel):
    delivered: bool
    error: str | None = None


class RoutesRead(BaseModel):
    source: Literal["api", "file", "default"]
    route: JsonObject


class RulesRead(BaseModel):
    source: Literal["api", "file"]
    rules: list[JsonObject]


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    alert_id: str
    channel: str
    kind: str | None
    transition: str | None
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None
    dead_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryRead]
