"""Metrics every consumer shares. Service metrics live in each service's metrics.py."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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
