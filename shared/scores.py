"""The score-change contract: what scoring publishes to ``vitals.scores``.

Keyed by ``account_id``. ``sequence`` grows by one per change of an account, so a
consumer drops anything at or below the last sequence it applied.

Versioned like the event contract: version 1 only ever gains optional fields. The
first fields (score, band, components) are always set; the rest are set by the full
scoring model (tier, churn risk, stage, drivers) and read by the alert rules.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.events import (
    MAX_SEATS,
    Day,
    Identifier,
    MinorUnits,
    Text200,
    Text500,
    UtcDatetime,
)


class Band(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class Risk(StrEnum):
    low = "low"
    medium = "medium"
    high = "high"


class Tier(StrEnum):
    S = "S"
    A = "A"
    B = "B"
    C = "C"


class Stage(StrEnum):
    onboarding = "onboarding"
    adoption = "adoption"
    steady = "steady"
    renewal_window = "renewal_window"
    churned = "churned"


class Trigger(StrEnum):
    """What made scoring compute this score."""

    events = "events"
    sweep = "sweep"
    override = "override"
    rescore = "rescore"


MAX_SEQUENCE = 2**53 - 1
"""Alerts orders an account's decisions as sequence x 1024 in a 64-bit column."""
MAX_LIST_ITEMS = 50
"""Most drivers, risk reasons and components a score change holds: a scorecard has at
most this many measures, groups and risk rules, so a valid one always fits."""
MAX_DRIVERS = 2 * MAX_LIST_ITEMS + 1
"""A driver per measure of the scorecard before and of the one now, and the score cap."""
ComponentName = Annotated[str, Field(min_length=1, max_length=100)]


class Driver(BaseModel):
    """One reason the score moved: a component, its measure before and after, the points."""

    model_config = ConfigDict(frozen=True)

    component: ComponentName
    measure_before: float | None = None
    measure_after: float | None = None
    points: float = Field(description="Effect on the health score, in points (signed).")
    text: Text500 = Field(
        description='For people, e.g. "active users / seats 0.62 -> 0.31, -9 points".'
    )


class AccountFacts(BaseModel):
    """What alert rules and routing read about the account besides its scores."""

    model_config = ConfigDict(frozen=True)

    name: Text500 | None = None
    segment: Text200 | None = None
    plan: Text200 | None = None
    owner_csm_email: Text500 | None = None
    owner_csm_slack: Text200 | None = None
    mrr_minor: MinorUnits | None = None
    currency: str | None = Field(None, max_length=3)
    seats: int | None = Field(None, ge=0, le=MAX_SEATS)
    renewal_date: Day | None = None
    last_usage_at: datetime | None = None
    paying: bool | None = Field(None, description="An active or past-due paid subscription.")


class ScoreChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    account_id: Identifier
    sequence: int = Field(
        ge=1,
        le=MAX_SEQUENCE,
        description="Grows by one per change of the account; up to 2^53 - 1.",
    )
    health_score: int = Field(ge=0, le=100)
    band: Band = Field(description="Effective band: a CSM override when one is active.")
    previous_score: int | None = None
    previous_band: Band | None = None
    components: dict[ComponentName, int] = Field(
        max_length=MAX_LIST_ITEMS, description="Component scores, 0-100 each."
    )
    computed_at: UtcDatetime

    # Set by the full scoring model; absent from older messages.
    trigger: Trigger | None = None
    scorecard: Text200 | None = Field(None, description="Scorecard id@version that computed this.")
    drivers: list[Driver] = Field(default_factory=list, max_length=MAX_DRIVERS)
    trend_7d: int | None = Field(None, description="Score now minus 7 days ago.")
    trend_30d: int | None = Field(None, description="Score now minus 30 days ago.")
    stale: bool = Field(False, description="Inputs older than the freshness limit.")
    risk: Risk | None = None
    previous_risk: Risk | None = None
    risk_reasons: list[Text500] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tier: Tier | None = Field(None, description="Effective tier: a CSM override when active.")
    previous_tier: Tier | None = None
    value_score: int | None = Field(None, ge=0, le=100)
    previous_value_score: int | None = Field(None, ge=0, le=100)
    stage: Stage | None = None
    previous_stage: Stage | None = None
    overridden: list[Literal["band", "tier"]] = Field(
        default_factory=list, description="Which of band and tier a CSM override sets."
    )
    account: AccountFacts = Field(default_factory=AccountFacts)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScoreChange:
        return cls.model_validate_json(raw)
