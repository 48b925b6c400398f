"""The normalised event contract: what ingest publishes to ``vitals.events``.

Versioned by ``schema_version``; a new version only adds optional fields, or gets a
new number and is handled side by side by the consumers. The JSON Schema lives in
``docs/event-schema.json`` (``make schema`` regenerates it).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticKnownError

SCHEMA_VERSION = 1

# The limits of what Vitals can hold: ingest refuses anything past them with a clear
# reason, and every consumer checks them again, so a record that reaches a topic some
# other way is dead-lettered instead of failing in the database or in date arithmetic.
EARLIEST_EVENT_TIME = datetime(2000, 1, 1, tzinfo=UTC)
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2199, 12, 31)
MAX_MINOR_UNITS = 10**15
"""Amounts in minor units: 10 trillion in a two-decimal currency, far inside 64 bits."""
MAX_SEATS = 10**9
MAX_QUANTITY = 1e12
MAX_PROPERTIES_DEPTH = 32
"""How deep ``properties`` may nest: objects and arrays inside it, counted from 1."""
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
MAX_ID_LENGTH = 200

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1F\x7F-\x9F]")
"""C0, DEL and C1: databases cannot hold them all (NUL), logs and consoles misread them."""
PRINTABLE_SCHEMA = {"pattern": r"^[^\x00-\x1F\x7F-\x9F]*$"}


def is_storable_id(value: str) -> bool:
    """Whether ``value`` can be kept as an id (a key in a database): a sender's id that
    is not is looked up nowhere; the event that carries it is refused by the contract."""
    return 0 < len(value) <= MAX_ID_LENGTH and not CONTROL_CHARACTERS.search(value)


def _printable(value: str) -> str:
    if value.isascii() and value.isprintable():  # as most are: quicker than the search
        return value
    if CONTROL_CHARACTERS.search(value):
        raise ValueError("must not contain control characters")
    return value


def _normalised_id(value: object) -> object:
    """Ids are compared as text: NFC and trimmed, so one account is one id; and they
    hold no control characters. One call per id: every event has up to three."""
    if not isinstance(value, str):
        return value  # pydantic says it is not a string
    value = value.strip()
    if not (value.isascii() and value.isprintable()):  # printable ASCII is NFC: most ids
        value = _printable(value)
        if not unicodedata.is_normalized("NFC", value):
            value = unicodedata.normalize("NFC", value)
    # The length of the normalised id, with the errors pydantic's length checks after
    # this validator would give: those would be two more calls into Python per id.
    if not value:
        raise PydanticKnownError(
            "too_short", {"field_type": "Value", "min_length": 1, "actual_length": 0}
        )
    if len(value) > MAX_ID_LENGTH:
        context = {"field_type": "Value", "max_length": MAX_ID_LENGTH, "actual_length": len(value)}
        raise PydanticKnownError("too_long", context)
    return value


# The length constraints come before the validator, so that pydantic checks them in
# its core (for the schema, and for input that only becomes a string there).
Identifier = Annotated[
    str,
    Field(min_length=1, max_length=MAX_ID_LENGTH, json_schema_extra=PRINTABLE_SCHEMA),
    BeforeValidator(_normalised_id),
]
"""An id: Unicode NFC, no leading or trailing white space, no control characters."""
Name = Annotated[
    str,
    Field(min_length=1, max_length=200, json_schema_extra=PRINTABLE_SCHEMA),
    AfterValidator(_printable),
]
Text200 = Annotated[
    str, Field(max_length=200, json_schema_extra=PRINTABLE_SCHEMA), AfterValidator(_printable)
]
Text500 = Annotated[
    str, Field(max_length=500, json_schema_extra=PRINTABLE_SCHEMA), AfterValidator(_printable)
]


def _to_utc(value: datetime) -> datetime:
    try:
        utc = value.astimezone(UTC)
    except OverflowError:
        raise ValueError("time is outside the range of dates") from None
    if utc < EARLIEST_EVENT_TIME:
        raise ValueError(f"time is before {EARLIEST_EVENT_TIME.isoformat()}")
    return utc


def _in_date_range(value: date) -> date:
    if not EARLIEST_DATE <= value <= LATEST_DATE:
        raise ValueError(f"date must be from {EARLIEST_DATE} to {LATEST_DATE}")
    return value


UtcDatetime = Annotated[AwareDatetime, AfterValidator(_to_utc)]
"""A time with its offset, kept in UTC; from 2000-01-01 on."""
Day = Annotated[date, AfterValidator(_in_date_range)]
MinorUnits = Annotated[int, Field(ge=-MAX_MINOR_UNITS, le=MAX_MINOR_UNITS)]


def json_problem(value: object, max_depth: int, *, int64: bool = True) -> str | None:
    """Why parsed JSON cannot travel in an event, or None: nested deeper than
    ``max_depth`` (objects and arrays, counted from 1), or (``int64``) an integer
    outside 64 bits. Walks level by level, so input never drives recursion, and JSON
    encoders' own recursion limits are never met downstream; it is on every event's
    path, hence the plain loops."""
    if int64 and type(value) is int and not INT64_MIN <= value <= INT64_MAX:
        return "an integer is outside the 64-bit range"
    level = [value] if isinstance(value, dict | list) else []
    depth = 1
    while level:
        if depth > max_depth:
            return f"nested deeper than {max_depth} levels"
        below: list[Any] = []
        for container in level:
            for child in container.values() if type(container) is dict else container:
                kind = type(child)
                if kind is dict or kind is list:
                    below.append(child)
                elif int64 and kind is int and not INT64_MIN <= child <= INT64_MAX:
                    return "an integer is outside the 64-bit range"
        level = below
        depth += 1
    return None


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

    amount_minor: MinorUnits | None = Field(None, description="Amount of this billing event.")
    currency: str | None = Field(None, pattern=r"^[A-Z]{3}$", description="ISO 4217 code.")
    mrr_minor: MinorUnits | None = Field(None, ge=0, description="Monthly recurring revenue.")
    seats: int | None = Field(None, ge=0, le=MAX_SEATS, description="Licensed seats.")
    plan: Text200 | None = None
    subscription_status: SubscriptionStatus | None = None
    subscription_started_on: Day | None = Field(
        None, description="First day of the subscription (lifecycle stage)."
    )
    renewal_date: Day | None = Field(None, description="End of the current period.")
    term_months: int | None = Field(
        None,
        ge=1,
        le=120,
        description="Months of one subscription term: 1 for a monthly plan, 12 for an annual "
        "one. With it, a scorecard can count renewal windows for contract terms only.",
    )
    cancel_at_period_end: bool | None = Field(
        None, description="True when a cancellation is scheduled for the renewal date."
    )
    payment: PaymentOutcome | None = Field(
        None, description="Outcome of the payment this event reports, if any."
    )
    invoice_due_on: Day | None = Field(
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

    name: Text500 | None = None
    owner_csm_email: str | None = Field(
        None, max_length=320, pattern=r"^[^@\s\x00-\x1F\x7F-\x9F]+@[^@\s\x00-\x1F\x7F-\x9F]+$"
    )
    owner_csm_slack: Text200 | None = None
    segment: Text200 | None = None


class EventFields(BaseModel):
    """Fields a sender supplies; shared by the input shape and the stored event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    account_id: Identifier = Field(description="The customer account; the partition key.")
    kind: EventKind
    name: Name = Field(description="e.g. report.exported")
    occurred_at: UtcDatetime = Field(description="Event time, with a UTC offset.")
    user_id: Identifier | None = None
    feature: Name | None = None
    quantity: float | None = Field(None, ge=0, le=MAX_QUANTITY, allow_inf_nan=False)
    billing: Billing | None = None
    traits: AccountTraits | None = None
    properties: dict[str, object] = Field(
        default_factory=dict,
        description=f"Free-form JSON, nested at most {MAX_PROPERTIES_DEPTH} levels.",
    )

    @field_validator("properties")
    @classmethod
    def _properties_fit(cls, value: dict[str, object]) -> dict[str, object]:
        if value and (problem := json_problem(value, MAX_PROPERTIES_DEPTH)) is not None:
            raise ValueError(problem)
        return value

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


def event_json_schema() -> dict[str, object]:
    schema = Event.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"urn:vitals:event:v{SCHEMA_VERSION}"
    return schema
