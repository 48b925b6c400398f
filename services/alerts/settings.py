from __future__ import annotations

from pydantic import AnyHttpUrl, Field

from shared.settings import VitalsSettings


class AlertsSettings(VitalsSettings):
    alerts_database_url: str = Field(
        "sqlite+aiosqlite:///var/alerts.db",
        description=(
            "SQLAlchemy URL of the alerts database; postgresql+asyncpg://... in production."
        ),
    )
    alerts_consumer_group: str = Field(
        "vitals-alerts", description="Kafka consumer group of the alerts replicas."
    )
    alerts_health_threshold: int = Field(
        40, ge=1, le=100, description="An alert opens when the health score falls below this."
    )
    alerts_webhook_url: AnyHttpUrl | None = Field(
        None, description="Generic webhook every alert is posted to; unset: alerts are only stored."
    )
    alerts_delivery_timeout_s: float = Field(
        10.0, gt=0, description="How long one webhook call may take."
    )
    alerts_delivery_max_attempts: int = Field(
        10, ge=1, description="Attempts before a delivery is marked dead."
    )
    alerts_dispatch_interval_s: float = Field(
        1.0, gt=0, description="How often the dispatcher looks for due deliveries when idle."
    )
