from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class AlertState(StrEnum):
    open = "open"
    resolved = "resolved"


class AlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    account_id: str
    rule: str
    episode: int
    state: AlertState
    health_score: int
    band: str
    summary: str
    opened_at: datetime
    resolved_at: datetime | None


class AlertList(BaseModel):
    alerts: list[AlertRead]
