"""The result of scoring an account at one moment, as kept in its state."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.scores import Band, Risk, Stage, Tier

MeasureValue = float | str | None


class Assessment(BaseModel):
    computed_at: datetime
    scorecard: str = Field(description="id@version of the scorecard used.")
    health_score: int
    band: Band = Field(description="Computed band, before any override.")
    components: dict[str, int]
    contributions: dict[str, float] = Field(
        description="Points each measure (and a cap, as 'cap') adds to the score; they sum to it."
    )
    measures: dict[str, MeasureValue]
    risk: Risk
    risk_reasons: list[str] = Field(default_factory=list)
    value_score: int | None = None
    tier: Tier | None = Field(None, description="Computed tier, before any override.")
    stage: Stage | None = None
    stale: bool = False
    effective_band: Band
    effective_tier: Tier | None = None
    overridden: list[str] = Field(default_factory=list)
