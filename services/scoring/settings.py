from __future__ import annotations

from pydantic import Field

from shared.settings import VitalsSettings


class ScoringSettings(VitalsSettings):
    scoring_database_url: str = Field(
        "sqlite+aiosqlite:///var/scoring.db",
        description=(
            "SQLAlchemy URL of the scoring database; postgresql+asyncpg://... in production."
        ),
    )
    scoring_consumer_group: str = Field(
        "vitals-scoring", description="Kafka consumer group of the scoring replicas."
    )
    scoring_batch_max_records: int = Field(
        500, gt=0, description="Most events applied in one database transaction."
    )
