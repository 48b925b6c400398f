"""Metrics every consumer shares. Service metrics live in each service's metrics.py."""

from __future__ import annotations

import contextlib
import os
import platform
import tempfile
from collections.abc import Callable, Iterator
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from aiokafka import TopicPartition
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# A counter's or histogram's *_created series is one more gauge family each, which no
# dashboard or rule reads (85 of them across the services): not exposed.
disable_created_metrics()  # type: ignore[no-untyped-call]


# prometheus-client's own switch: set, every metric is kept in a file per process in
# that folder, so that one worker can answer for all.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


def exposition() -> bytes:
    """What /metrics answers (as ``CONTENT_TYPE_LATEST``), in every service and the console:
    this process's metrics, or, under ``serve --workers N``, every worker's merged."""
    if MULTIPROCESS_DIR not in os.environ:
        return generate_latest()
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return generate_latest(registry)


@contextlib.contextmanager
def shared_by_workers() -> Iterator[None]:
    """Worker processes started within write their metrics where each worker's /metrics
    reads them all: the operator's ``PROMETHEUS_MULTIPROC_DIR``, emptied first (files
    of an earlier run would add to the counts), or else a folder removed afterwards."""
    chosen = os.environ.get(MULTIPROCESS_DIR)
    if chosen:
        for stale in Path(chosen).glob("*.db"):
            stale.unlink()
        yield
        return
    with tempfile.TemporaryDirectory(prefix="vitals-metrics-") as folder:
        os.environ[MULTIPROCESS_DIR] = folder
        try:
            yield
        finally:
            del os.environ[MULTIPROCESS_DIR]


# Every HTTP request of every service and the console, by route template (the path as
# the app declares it, "/v1/accounts/{account_id}", so the label set stays bounded),
# method and status code.
HTTP_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
HTTP_REQUESTS = Counter(
    "vitals_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "code"],
)
HTTP_REQUEST_SECONDS = Histogram(
    "vitals_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by route template, method and "
    "status code.",
    ["route", "method", "code"],
    buckets=HTTP_LATENCY_BUCKETS,
)
BUILD_INFO = Gauge(
    "vitals_build_info",
    "1, labelled with the running Vitals version (package metadata) and Python version.",
    ["version", "python"],
    multiprocess_mode="max",
)


def package_version() -> str:
    """The installed distribution's version; "unknown" when run from a bare checkout."""
    try:
        return version("vitals")
    except PackageNotFoundError:
        return "unknown"


BUILD_INFO.labels(package_version(), platform.python_version()).set(1)


READINESS_CHECK_OK = Gauge(
    "vitals_readiness_check_ok",
    "1 while the named /readyz check says ok, else 0; evaluated at every /readyz and every "
    "scrape of /metrics.",
    ["check"],
    multiprocess_mode="mostrecent",
)
PUBLISHER_PENDING_ROWS = Gauge(
    "vitals_publisher_pending_rows",
    "Rows waiting in an outbox to be published to their topic, by outbox (read at every "
    "/readyz and scrape).",
    ["outbox"],
    multiprocess_mode="mostrecent",
)
PUBLISHER_OLDEST_AGE_SECONDS = Gauge(
    "vitals_publisher_oldest_pending_age_seconds",
    "How long the oldest row of an outbox has waited to be published; 0 if none.",
    ["outbox"],
    multiprocess_mode="mostrecent",
)
PUBLISHER_RECORDS_REFUSED = Counter(
    "vitals_publisher_records_refused_total",
    "Records too large to send: dead-lettered, not retried.",
    ["outbox"],
)
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
    multiprocess_mode="sum",
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
    "Records behind the end of a partition, from the position stored with the state "
    "(measured every VITALS_LAG_PROBE_INTERVAL_S, also while the consumer is stopped).",
    ["consumer", "topic", "partition"],
    # Every worker measures the same positions: the latest measurement stands.
    multiprocess_mode="mostrecent",
)


def lag_gauge(consumer: str) -> Callable[[TopicPartition, int], None]:
    """Sets ``consumer``'s lag on one partition (for :class:`shared.lag.LagProbe`)."""

    def set_lag(tp: TopicPartition, lag: int) -> None:
        CONSUMER_LAG.labels(consumer, tp.topic, str(tp.partition)).set(lag)

    return set_lag
