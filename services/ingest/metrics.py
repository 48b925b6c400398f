from __future__ import annotations

from prometheus_client import Counter, Histogram

EVENTS_ACCEPTED = Counter(
    "vitals_ingest_events_accepted_total", "Events acknowledged by the broker.", ["source"]
)
REQUESTS_REJECTED = Counter(
    "vitals_ingest_requests_rejected_total", "Requests answered with an error.", ["reason"]
)
PUBLISH_SECONDS = Histogram(
    "vitals_ingest_publish_seconds",
    "Time from handing a request's events to the producer until the broker acknowledged.",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
