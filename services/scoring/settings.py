from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from services.scoring.domain import Limits
from services.scoring.retention.currency import RatesError, RatesFile
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
        5000, gt=0, description="Most events applied in one database transaction."
    )
    scoring_state_cache_accounts: int = Field(
        20_000,
        ge=1,
        description=(
            "Account states kept in memory between batches (most recently used first); a "
            "state takes about 25-40 KiB."
        ),
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
    scoring_portfolio_max_age_s: float = Field(
        15.0,
        ge=0,
        le=3600,
        description="How old `GET /v1/portfolio`'s figures may be: they add up every "
        "account (about 0.7 s at a million), so they are computed once per this many "
        "seconds; 0: at every request.",
    )

    home_currency: str = Field(
        "USD",
        pattern=r"^[A-Z]{3}$",
        description="The currency (ISO 4217) revenue retention and renewals are reported in.",
    )
    scoring_retention_max_age_s: float = Field(
        300.0,
        ge=0,
        le=86_400,
        description="How old `GET /v1/retention`'s figures may be: they add up every "
        "account's months (seconds at a million accounts), so each question is computed "
        "once per this many seconds; 0: at every request.",
    )
    scoring_currency_rates_path: Path | None = Field(
        None,
        description="A YAML file of rates to the home currency (`as_of`, `rates: {EUR: 1.08}`), "
        "read again when it changes; unset: only the home currency converts, other "
        "currencies are reported as unconverted.",
    )

    scoring_instance_id: str | None = Field(
        None,
        max_length=200,
        description=(
            "Static Kafka group membership: a stable id per replica (e.g. the pod name of a "
            "StatefulSet), so a restarted replica gets its partitions back at once, without a "
            "rebalance; unset: dynamic membership."
        ),
    )
    scoring_fixed_clock: datetime | None = Field(
        None,
        description=(
            "Test environments only: the service's clock stands still at this time (ISO 8601, "
            "UTC), so that runs are reproducible; refused in production."
        ),
    )

    @model_validator(mode="after")
    def _fixed_clock_only_in_tests(self) -> ScoringSettings:
        if self.scoring_fixed_clock is not None and self.environment == "production":
            raise ValueError("VITALS_SCORING_FIXED_CLOCK must not be set in production")
        return self

    @field_validator("scoring_fixed_clock")
    @classmethod
    def _fixed_clock_is_utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, e.g. 2026-11-22T12:00:00Z")
        return value.astimezone(UTC) if value is not None else None

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

    @model_validator(mode="after")
    def _rates_are_valid(self) -> ScoringSettings:
        if self.scoring_currency_rates_path is not None:
            try:
                RatesFile(self.scoring_currency_rates_path, self.home_currency)
            except RatesError as exc:
                raise ValueError(str(exc)) from None
        return self

    def limits(self) -> Limits:
        return Limits(
            lateness=timedelta(days=self.scoring_lateness_days),
            exact_users_max=self.scoring_exact_users_max,
        )

    def kafka_membership(self) -> dict[str, object]:
        """Consumer options for static group membership, when an instance id is set."""
        if self.scoring_instance_id is None:
            return {}
        return {"group_instance_id": self.scoring_instance_id}
