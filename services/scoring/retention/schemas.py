"""What the retention and renewals routes answer."""

from __future__ import annotations

from datetime import date

from pydantic import BaseModel, Field

from shared.scores import Band, Risk, Stage, Tier


class RetentionPeriod(BaseModel):
    period_start: date = Field(description="First day of the month or quarter.")
    group: str | None = Field(description="The tier, segment or owner grouped by; null: all.")
    starting_mrr_minor: int = Field(description="MRR of the accounts paying at the start.")
    new_mrr_minor: int = Field(description="From accounts paying nothing at the start.")
    expansion_mrr_minor: int
    contraction_mrr_minor: int
    churn_mrr_minor: int
    movement_mrr_minor: int = Field(description="new + expansion - contraction - churn.")
    ending_mrr_minor: int
    grr: float | None = Field(description="(starting - contraction - churn) / starting.")
    nrr: float | None = Field(
        description="(starting + expansion - contraction - churn) / starting."
    )


class Unconverted(BaseModel):
    currency: str = Field(description="'' for accounts whose MRR came without a currency.")
    mrr_minor: int = Field(description="Its MRR at the end, in its own minor units.")


class RetentionRead(BaseModel):
    home_currency: str
    rates_as_of: date | None
    grain: str = Field(description="month or quarter")
    by: str | None
    periods: list[RetentionPeriod]
    unconverted: list[Unconverted] = Field(
        description="Currencies without a rate: left out of every figure above."
    )


class RenewalRead(BaseModel):
    account_id: str
    name: str | None
    renewal_date: date
    outcome: str | None = Field(description="renewed, downgraded, churned; null: not yet.")
    term_months: int | None
    currency: str | None
    arr_minor: int | None = Field(description="12 x MRR, in the account's currency.")
    arr_home_minor: int | None = Field(description="The ARR in home currency.")
    unconverted: bool = Field(description="True when the currency has no rate.")
    mrr_before_minor: int | None = Field(description="Before the renewal, when it is decided.")
    health_score: int | None
    band: Band | None
    risk: Risk | None
    tier: Tier | None
    stage: Stage | None
    owner: str | None


class RenewalList(BaseModel):
    home_currency: str
    renewals: list[RenewalRead]
