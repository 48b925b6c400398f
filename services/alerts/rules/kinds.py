"""The kinds of alert rule, found by their ``kind`` (the registry is :data:`Rule`).

Each rule has a unique ``name`` (the alert key together with the account) and a
``kind`` saying which condition it checks; several rules may share a kind with
different thresholds. A kind's condition is ``engine.check_kind``, found by its class.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.alerts.durations import Duration
from shared.scores import Band, Risk

RISK_ORDER = (Risk.low, Risk.medium, Risk.high)
Direction = Literal["up", "down"]
RuleName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,99}$")]


class RuleBase(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: RuleName
    enabled: bool = True
    cooldown: Duration | None = Field(
        timedelta(hours=24),
        description="Least time between two notices of one open alert; null: never remind.",
    )
    notify_resolved: bool = Field(True, description="Send a notice when the condition clears.")

    judged_in_onboarding: ClassVar[bool] = True
    """False for rules that read how usage moves: it only starts moving then."""

    def health_window(self) -> timedelta:
        """How far back the engine must remember an account's health for this rule."""
        return timedelta(0)


class ChurnRiskRaised(RuleBase):
    kind: Literal["churn_risk_raised"]
    min_risk: Literal[Risk.medium, Risk.high] = Risk.medium
    resolve_at: Risk = Field(
        Risk.low, description="Resolved once the risk is at or below this (hysteresis)."
    )
    top_drivers: int = Field(3, ge=0, le=20)

    @model_validator(mode="after")
    def _resolve_below_open(self) -> ChurnRiskRaised:
        if RISK_ORDER.index(self.resolve_at) >= RISK_ORDER.index(self.min_risk):
            raise ValueError("resolve_at must be a lower risk than min_risk")
        return self


class SharpHealthDrop(RuleBase):
    kind: Literal["sharp_health_drop"]
    judged_in_onboarding: ClassVar[bool] = False
    points: int = Field(15, gt=0, le=100, description="Drop that opens the alert.")
    within: Duration = Field(timedelta(days=7), description="Window the drop is measured over.")
    hysteresis_points: int = Field(
        5, ge=0, description="Resolved once the drop is below points - hysteresis_points."
    )
    top_drivers: int = Field(3, ge=0, le=20)
    bands: list[Band] = Field(
        default_factory=lambda: list(Band),
        min_length=1,
        description="Opens only when the drop ends in one of these bands: a score that "
        "fell but is still green needs no one's attention.",
    )

    def health_window(self) -> timedelta:
        return self.within

    @model_validator(mode="after")
    def _window_and_margin(self) -> SharpHealthDrop:
        if self.within <= timedelta(0) or self.within > timedelta(days=90):
            raise ValueError("within must be between 1s and 90d")
        if self.hysteresis_points >= self.points:
            raise ValueError("hysteresis_points must be smaller than points")
        return self


class TierChanged(RuleBase):
    kind: Literal["tier_changed"]
    directions: list[Direction] = Field(default_factory=lambda: list[Direction](["up", "down"]))
    expire_after: Duration = Field(
        timedelta(days=7), description="An unchanged tier closes the alert after this."
    )
    cooldown: Duration | None = None
    notify_resolved: bool = False


class AccountSilent(RuleBase):
    kind: Literal["account_silent"]
    judged_in_onboarding: ClassVar[bool] = False
    days: int = Field(14, ge=1, le=365, description="Days without usage of a paying account.")
    hysteresis_days: int = Field(
        0, ge=0, description="Resolved once silent for fewer than days - hysteresis_days."
    )

    @model_validator(mode="after")
    def _margin(self) -> AccountSilent:
        if self.hysteresis_days >= self.days:
            raise ValueError("hysteresis_days must be smaller than days")
        return self


class RenewalAtRisk(RuleBase):
    kind: Literal["renewal_at_risk"]
    days: int = Field(60, ge=1, le=730, description="Renewal within this many days.")
    bands: list[Band] = Field(default_factory=lambda: [Band.red, Band.yellow], min_length=1)
    resolve_at_health: int = Field(
        75, ge=0, le=100, description="Resolved once health reaches this (hysteresis)."
    )
    cooldown: Duration | None = timedelta(days=7)


Rule = Annotated[
    ChurnRiskRaised | SharpHealthDrop | TierChanged | AccountSilent | RenewalAtRisk,
    Field(discriminator="kind"),
]
