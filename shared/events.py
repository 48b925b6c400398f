"""The normalised event contract: what ingest publishes to ``vitals.events``.

Versioned by ``schema_version``; a new version only adds optional fields, or gets a
new number and is handled side by side by the consumers. The JSON Schema lives in
``docs/event-schema.json`` (``make schema`` regenerates it).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = 1

Identifier = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^\S(.*\S)?$")]


def _to_utc(value: datetime) -> datetime:
    return value.astimezone(UTC)


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]


class EventKind(StrEnum):
    usage = "usage"
    billing = "billing"
    account = "account"


class SubscriptionStatus(StrEnum):
    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    unpaid = "unpaid"
    paused = "paused"
    canceled = "canceled"


class PaymentOutcome(StrEnum):
    """What happened to a payment, for billing events about invoices and charges."""

    paid = "paid"
    failed = "failed"
    action_required = "action_required"
    refunded = "refunded"
    disputed = "disputed"


class Billing(BaseModel):
    """Billing facts; amounts are integers in the currency's minor unit (cents).

    Every field is optional: a billing event carries what its source knows, and
    scoring keeps the last known value of each.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    amount_minor: int | None = Field(None, description="Amount of this billing event.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    mrr_minor: int | None = Field(None, ge=0, description="Monthly recurring revenue.")
    seats: int | None = Field(None, ge=0, description="Licensed seats.")
    plan: str | None = Field(None, max_length=200)
    subscription_status: SubscriptionStatus | None = None
    subscription_started_on: date | None = Field(
        None, description="First day of the subscription (lifecycle stage)."
    )
    renewal_date: date | None = Field(None, description="End of the current period.")
    cancel_at_period_end: bool | None = Field(
        None, description="True when a cancellation is scheduled for the renewal date."
    )
    payment: PaymentOutcome | None = Field(
        None, description="Outcome of the payment this event reports, if any."
    )
    invoice_due_on: date | None = Field(
        None, description="Due date of the unpaid invoice this event reports (days past due)."
    )

    @model_validator(mode="after")
    def _amounts_have_currency(self) -> Billing:
        has_amount = self.amount_minor is not None or self.mrr_minor is not None
        if has_amount and self.currency is None:
            raise ValueError("currency is required with amount_minor or mrr_minor")
        return self


class AccountTraits(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str | None = Field(None, max_length=500)
    owner_csm_email: str | None = Field(None, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    owner_csm_slack: str | None = Field(None, max_length=200)
    segment: str | None = Field(None, max_length=200)


class EventFields(BaseModel):
    """Fields a sender supplies; shared by the input shape and the stored event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Identifier = Field(description="The customer account; the partition key.")
    kind: EventKind
    name: str = Field(min_length=1, max_length=200, description="e.g. report.exported")
    occurred_at: UtcDatetime = Field(description="Event time, with a UTC offset.")
    user_id: Identifier | None = None
    feature: str | None = Field(None, min_length=1, max_length=200)
    quantity: float | None = Field(None, ge=0, allow_inf_nan=False)
    billing: Billing | None = None
    traits: AccountTraits | None = None
    properties: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _kind_has_its_details(self) -> EventFields:
        if self.kind is EventKind.billing and self.billing is None:
            raise ValueError("a billing event needs a 'billing' object")
        if self.kind is EventKind.account and self.traits is None:
            raise ValueError("an account event needs a 'traits' object")
        return self


class Event(EventFields):
    """A normalised event as it travels on ``vitals.events``."""

    schema_version: Literal[1] = 1
    event_id: Identifier = Field(description="Unique id; repeated deliveries share it.")
    received_at: UtcDatetime = Field(description="When Vitals accepted the event.")

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json", exclude_none=True))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Event:
        return cls.model_validate_json(raw)


def event_json_schema() -> dict[str, Any]:
    schema = Event.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:vitals:event:v{SCHEMA_VERSION}"
    return schema
