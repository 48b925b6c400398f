"""The score-change contract: what scoring publishes to ``vitals.scores``.

Keyed by ``account_id``. ``sequence`` grows by one per change of an account, so a
consumer drops anything at or below the last sequence it applied.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field

from shared.events import UtcDatetime


class Band(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


class ScoreChange(BaseModel):
    model_config = ConfigDict(frozen=True)

    schema_version: Literal[1] = 1
    account_id: str
    sequence: int = Field(ge=1)
    health_score: int = Field(ge=0, le=100)
    band: Band
    previous_score: int | None = None
    previous_band: Band | None = None
    components: dict[str, int] = Field(description="Component scores, 0-100 each.")
    computed_at: UtcDatetime

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def from_bytes(cls, raw: bytes) -> ScoreChange:
        return cls.model_validate_json(raw)
