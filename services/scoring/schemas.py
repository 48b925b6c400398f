"""What the scoring API reads and writes."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field, model_validator

from shared.scores import Band, Driver, Risk, Stage, Tier, Trigger


class OverrideRead(BaseModel):
    id: str
    field: Literal["band", "tier"]
    value: str
    reason: str
    created_by: str
    created_with_key: str | None = Field(
        None, description="Name of the API key that set it (none when keys are off)."
    )
    created_at: datetime
    expires_at: datetime
    active: bool = Field(description="Neither lifted nor expired.")
    lifted_at: datetime | None = None
    lifted_by: str | None = None
    lifted_with_key: str | None = None
    lift_reason: str | None = None
    lapsed_at: datetime | None = Field(None, description="When scoring saw it expire.")


class OverrideCreate(BaseModel):
    field: Literal["band", "tier"]
    value: str = Field(description="A band (green, yellow, red) or a tier (S, A, B, C).")
    reason: str = Field(min_length=3, max_length=2000)
    expires_at: AwareDatetime = Field(description="When the override lapses by itself.")
    created_by: str = Field(min_length=1, max_length=200, description="Who sets it.")

    @model_validator(mode="after")
    def _value_fits_field(self) -> OverrideCreate:
        allowed = [b.value for b in Band] if self.field == "band" else [t.value for t in Tier]
        if self.value not in allowed:
            raise ValueError(f"value must be one of {allowed} for field {self.field}")
        return self


class OverridesLifted(BaseModel):
    lifted: int


class AccountRead(BaseModel):
    account_id: str
    health_score: int | None = Field(description="0-100; null until the account has data.")
    band: Band | None = Field(description="Effective band: an active override, else computed.")
    computed_band: Band | None
    components: dict[str, int] = Field(description="Component scores behind the health score.")
    drivers: list[Driver] = Field(description="What moved at the last change of the score.")
    trend_7d: int | None
    trend_30d: int | None
    risk: Risk | None
    risk_reasons: list[str]
    value_score: int | None
    tier: Tier | None = Field(description="Effective tier: an active override, else computed.")
    computed_tier: Tier | None
    stage: Stage | None
    stale: bool | None = Field(description="Inputs older than the scorecard's freshness limit.")
    scored_at: datetime | None
    scorecard: str | None = Field(description="id@version of the scorecard used.")
    overrides: list[OverrideRead] = Field(description="Active CSM overrides.")
    sequence: int = Field(description="Number of material score changes so far.")
    events_applied: int
    name: str | None
    owner_csm_email: str | None
    owner_csm_slack: str | None
    segment: str | None
    plan: str | None
    seats: int | None
    active_users_30d: int | None
    active_users_estimated: bool = Field(description="True once counted by HLL sketch.")
    mrr_minor: int | None
    currency: str | None
    subscription_status: str | None
    renewal_date: date | None
    last_payment: LastPayment | None = Field(None, description="The latest payment's outcome.")
    days_past_due: int | None = Field(
        None, description="Days an unresolved payment is past due (0: none); null without billing."
    )
    last_usage_at: datetime | None
    last_event_at: datetime | None
    updated_at: datetime


class AccountSummary(BaseModel):
    account_id: str
    name: str | None
    health_score: int | None
    band: Band | None
    tier: Tier | None
    risk: Risk | None
    stage: Stage | None
    owner: str | None
    segment: str | None
    mrr_minor: int | None
    score_change: int | None = Field(description="Score now minus 7 days ago.")
    value_score: int | None
    stale: bool | None
    scored_at: datetime | None
    renewal_date: date | None = Field(None, description="When the subscription renews.")
    change_30d: int | None = Field(None, description="Score now minus 30 days ago.")


class AccountCount(BaseModel):
    accounts: int = Field(description="How many accounts the filters find, up to a limit.")
    more: bool = Field(description="True: there are more than `accounts`.")


class AccountPage(BaseModel):
    accounts: list[AccountSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")
    count: AccountCount | None = Field(None, description="With `count=true`.")


class AttentionEntry(AccountSummary):
    why: list[str] = Field(
        description="Why it needs attention, most pressing first, in words: its churn-risk "
        'reasons, "renews in 14 days, health yellow", "down 25 points in 30 days".'
    )


class AttentionList(BaseModel):
    accounts: list[AttentionEntry] = Field(
        description="Not churned; high risk on any tier, medium risk on S and A, not green "
        "and renewing within 60 days, or down 15 points or more in 30 days. Most valuable "
        "tiers first, then the riskiest, the soonest renewal, the biggest drop."
    )
    computed_at: datetime


class LastPayment(BaseModel):
    outcome: str = Field(description="paid, failed, action_required...")
    on: date
    due_on: date | None


class HistoryEntry(BaseModel):
    sequence: int
    computed_at: datetime
    health_score: int
    band: Band
    components: dict[str, int]
    tier: Tier | None
    value_score: int | None
    risk: Risk | None
    stage: Stage | None
    trigger: Trigger | None
    scorecard: str | None
    drivers: list[Driver]


class HistoryPage(BaseModel):
    entries: list[HistoryEntry]
    next_cursor: str | None


class TierFigures(BaseModel):
    accounts: int
    mrr_minor: int
    revenue_share: float = Field(description="Share of the portfolio's MRR, 0-1.")


class PortfolioFigures(BaseModel):
    accounts: int
    mrr_minor: int
    tiers: dict[str, TierFigures] = Field(description='By tier; "unrated" for none yet.')
    bands: dict[str, int] = Field(
        description='Accounts by band; "unscored" for none yet, "churned" for churned ones.'
    )
    risks: dict[str, int] = Field(
        description='Accounts by risk; "unscored" for none yet, "churned" for churned ones.'
    )


class PortfolioDayRead(PortfolioFigures):
    day: date = Field(description="The day the first sweep found these figures.")


class PortfolioRead(PortfolioFigures):
    computed_at: datetime = Field(
        description="When the figures were added up: at most "
        "VITALS_SCORING_PORTFOLIO_MAX_AGE_S ago."
    )
    earlier: PortfolioDayRead | None = Field(
        None,
        description="The same figures on the kept day 30 days ago (or the earliest kept "
        "day, for a younger portfolio), to show how each moved; null before any is kept.",
    )


class ScorecardRead(BaseModel):
    ref: str
    id: str
    version: int
    default: bool
    definition: dict[str, object]
