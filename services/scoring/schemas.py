from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from shared.scores import Band


class AccountRead(BaseModel):
    account_id: str
    health_score: int | None = Field(description="0-100; null until the account has data.")
    band: Band | None
    components: dict[str, int] = Field(description="Component scores behind the health score.")
    sequence: int = Field(description="Number of material score changes so far.")
    events_applied: int
    name: str | None
    owner_csm_email: str | None
    segment: str | None
    seats: int | None
    mrr_minor: int | None
    currency: str | None
    subscription_status: str | None
    last_usage_at: datetime | None
    updated_at: datetime
