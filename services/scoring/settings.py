from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from pydantic import Field, field_validator

from services.scoring.domain import Limits
from services.scoring.scorecard import ScorecardError, load_scorecards
from shared.settings import VitalsSettings

SHIPPED_SCORECARDS = Path(__file__).parent / "scorecards"


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
    scoring_scorecards_path: Path = Field(
        SHIPPED_SCORECARDS,
        description="A scorecard YAML file, or a folder of them; the shipped default if unset.",
    )
    scoring_lateness_days: float = Field(
        7.0,
        gt=0,
        le=60,
        description="Events older than this behind an account's latest go to the DLQ.",
    )
    scoring_exact_users_max: int = Field(
        1000, ge=1, description="Distinct users counted exactly per account; past it, HLL sketches."
    )
    scoring_sweep_interval_s: float = Field(
        3600.0, gt=0, description="How often every owned account is re-scored at the current time."
    )
    scoring_sweep_chunk: int = Field(
        500, gt=0, description="Accounts re-scored per transaction during a sweep."
    )

    @field_validator("scoring_scorecards_path")
    @classmethod
    def _scorecards_are_valid(cls, path: Path) -> Path:
        # Checked with the settings, so `vitals config check` and start-up both name
        # the file and the field of a broken scorecard.
        try:
            load_scorecards(path)
        except ScorecardError as exc:
            raise ValueError(str(exc)) from None
        return path

    def limits(self) -> Limits:
        return Limits(
            lateness=timedelta(days=self.scoring_lateness_days),
            exact_users_max=self.scoring_exact_users_max,
        )
