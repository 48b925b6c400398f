"""Service settings for tests: the test broker, a given database, own topics."""

from __future__ import annotations

from typing import Any

from services.alerts.settings import AlertsSettings
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings

FAST_RETRY = {"startup_retry_max_s": 1.0, "topic_partitions": 3, "environment": "test"}


def ingest_settings(*, kafka: str, topics: dict[str, str], **overrides: Any) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=kafka,
        events_topic=topics["events_topic"],
        **{**FAST_RETRY, **overrides},
    )


def scoring_settings(
    *, kafka: str, database: str, topics: dict[str, str], **overrides: Any
) -> ScoringSettings:
    return ScoringSettings(
        kafka_bootstrap_servers=kafka,
        scoring_database_url=database,
        events_topic=topics["events_topic"],
        scores_topic=topics["scores_topic"],
        scoring_consumer_group=topics["scoring_consumer_group"],
        **{**FAST_RETRY, **overrides},
    )


def alerts_settings(
    *, kafka: str, database: str, topics: dict[str, str], **overrides: Any
) -> AlertsSettings:
    return AlertsSettings(
        kafka_bootstrap_servers=kafka,
        alerts_database_url=database,
        scores_topic=topics["scores_topic"],
        alerts_consumer_group=topics["alerts_consumer_group"],
        alerts_dispatch_interval_s=0.05,
        **{**FAST_RETRY, **overrides},
    )
