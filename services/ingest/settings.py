from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr

from services.ingest.domain import Limits
from services.ingest.sources.stripe.mapping import StripeAccounts
from shared.settings import VitalsSettings


class IngestSettings(VitalsSettings):
    ingest_database_url: str = Field(
        "sqlite+aiosqlite:///var/ingest.db",
        description=(
            "SQLAlchemy URL of the ingest database (seen event ids, Segment users); "
            "postgresql+asyncpg://... in production."
        ),
    )
    ingest_dedupe_window_s: float = Field(
        86_400.0, gt=0, description="How long an event_id is remembered to drop repeats."
    )
    ingest_dedupe_prune_interval_s: float = Field(
        300.0, gt=0, description="How often expired event ids are deleted."
    )
    ingest_segment_wait_s: float = Field(
        7 * 86_400,
        gt=0,
        description="How long a Segment call whose user has no account yet (an identify "
        "before the group call) waits for the user's group call before it is dead-lettered "
        "as unknown_account. Keep it within scoring's lateness.",
    )
    ingest_max_body_bytes: int = Field(
        512 * 1024, gt=0, description="Largest request body accepted, in bytes."
    )
    ingest_max_batch_events: int = Field(
        2500, gt=0, description="Most events accepted in one request."
    )
    ingest_max_event_bytes: int = Field(
        32 * 1024, gt=0, description="Largest single event accepted, in bytes of JSON."
    )
    ingest_max_future_s: float = Field(
        300.0,
        ge=0,
        description="How far past the time of receipt an event's time may be before it is refused.",
    )
    ingest_raw_topics: str = Field(
        "vitals.usage.raw,vitals.billing.raw",
        description=(
            "Raw Kafka topics ingest consumes (native, Segment or CloudEvents JSON), "
            "comma-separated; empty turns the Kafka intake off."
        ),
    )
    ingest_raw_consumer_group: str = Field(
        "vitals-ingest-raw", min_length=1, description="Consumer group of the raw-topic intake."
    )
    ingest_raw_max_rejected_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        description=(
            "Share of rejected raw items (over the window below) that stops the raw-topic "
            "intake instead of draining a topic into the DLQ; 1 = never stop."
        ),
    )
    ingest_raw_rejected_window: int = Field(
        1000, ge=1, description="How many recent raw items the rejected share is measured over."
    )
    ingest_publish_timeout_s: float = Field(
        10.0, gt=0, description="How long a request waits for the broker's acknowledgement."
    )

    ingest_stripe_webhook_secrets: SecretStr | None = Field(
        None,
        description=(
            "Signing secrets (whsec_...) of the Stripe webhook endpoint, comma-separated: "
            "several are accepted at once while a secret is rolled."
        ),
    )
    ingest_stripe_tolerance_s: float = Field(
        300.0, gt=0, description="Oldest Stripe-Signature timestamp accepted, in seconds."
    )
    ingest_stripe_account_metadata_key: str = Field(
        "vitals_account_id",
        min_length=1,
        description="Key of the Stripe customer (or subscription) metadata holding the account id.",
    )
    ingest_stripe_customer_accounts: dict[str, str] = Field(
        default_factory=dict,
        description=(
            'Stripe customer id -> account id, as JSON ({"cus_...": "acme"}); '
            "wins over the metadata key."
        ),
    )

    def stripe_secrets(self) -> list[str]:
        secrets = self.ingest_stripe_webhook_secrets
        values = secrets.get_secret_value().split(",") if secrets is not None else []
        return [value.strip() for value in values if value.strip()]

    def stripe_accounts(self) -> StripeAccounts:
        return StripeAccounts(
            self.ingest_stripe_account_metadata_key, self.ingest_stripe_customer_accounts
        )

    def dedupe_lease(self) -> timedelta:
        """How long a claimed, unconfirmed id blocks its repeats: past any publish in flight."""
        return timedelta(seconds=3 * self.ingest_publish_timeout_s + 5)

    def limits(self) -> Limits:
        return Limits(
            max_events=self.ingest_max_batch_events,
            max_event_bytes=self.ingest_max_event_bytes,
            max_future=timedelta(seconds=self.ingest_max_future_s),
        )
