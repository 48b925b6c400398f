"""Service settings for tests: the test broker, a given database, own topics."""

from __future__ import annotations

from typing import Any

from services.alerts.settings import AlertsSettings
from services.ingest.settings import IngestSettings
from services.scoring.settings import ScoringSettings
from tests.support.alerts_messages import TEST_RULES
from tests.support.scoring_builders import V1_SCORECARD

FAST_RETRY = {
    "startup_retry_max_s": 1.0,
    "topic_partitions": 3,
    "environment": "test",
    "lag_probe_interval_s": 0.2,
}


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
        # The pipeline tests pin their numbers to version 1 of the default scorecard;
        # version 2's behaviour is tested on its own, and end to end.
        **{**FAST_RETRY, "scoring_scorecards_path": V1_SCORECARD, **overrides},
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
        **{**FAST_RETRY, "alerts_rules_file": TEST_RULES, **overrides},
    )
