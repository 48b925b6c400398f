"""Metrics every consumer shares. Service metrics live in each service's metrics.py."""

from __future__ import annotations

import contextlib

from aiokafka import TopicPartition
from prometheus_client import (
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)

# A counter's or histogram's *_created series is one more gauge family each, which no
# dashboard or rule reads (85 of them across the services): not exposed.
disable_created_metrics()  # type: ignore[no-untyped-call]


def exposition() -> bytes:
    """What /metrics answers (as ``CONTENT_TYPE_LATEST``), in every service and the console."""
    return generate_latest()


CONSUMER_RECORDS = Counter(
    "vitals_consumer_records_total",
    "Records applied and flushed to the database, by consumer.",
    ["consumer"],
)
CONSUMER_BATCH_SECONDS = Histogram(
    "vitals_consumer_batch_seconds",
    "Time to apply and flush one batch in one database transaction.",
    ["consumer"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
CONSUMER_ASSIGNED = Gauge(
    "vitals_consumer_assigned_partitions",
    "Partitions currently assigned to this consumer.",
    ["consumer"],
)
CONSUMER_RECORDS_REJECTED = Counter(
    "vitals_consumer_records_rejected_total",
    "Records whose handling failed and that were dead-lettered so the partition moves on.",
    ["consumer"],
)
CONSUMER_RESTARTS = Counter(
    "vitals_consumer_restarts_total",
    "Times the consumer restarted after a failure (with growing backoff while it lasts).",
    ["consumer"],
)
CONSUMER_LAG = Gauge(
    "vitals_consumer_lag_records",
    "Records behind the end of a partition, from the position stored with the state.",
    ["consumer", "topic", "partition"],
)


def forget_lag(consumer: str, tp: TopicPartition) -> None:
    """Drop a partition's lag series once it is no longer ours."""
    with contextlib.suppress(KeyError):
        CONSUMER_LAG.remove(consumer, tp.topic, str(tp.partition))
