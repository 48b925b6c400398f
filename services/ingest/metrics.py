"""Every metric of the ingest service. ``source`` is the input channel: native,
segment, stripe, cloudevents or kafka; ``reason`` a rejection reason. Request counts
and latency by route are shared.metrics' ``vitals_http_*``, as in every service."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from shared.metrics import HTTP_LATENCY_BUCKETS

EVENTS_RECEIVED = Counter(
    "vitals_ingest_events_received_total",
    "Records received (events, or whole bodies that could not be read), by source.",
    ["source"],
)
EVENTS_ACCEPTED = Counter(
    "vitals_ingest_events_accepted_total",
    "New events acknowledged by the broker, by source.",
    ["source"],
)
EVENTS_REJECTED = Counter(
    "vitals_ingest_events_rejected_total",
    "Records rejected and dead-lettered, by source and reason.",
    ["source", "reason"],
)
DEAD_LETTERS = Counter(
    "vitals_ingest_dead_letters_total",
    "Dead letters acknowledged on the dead-letter topic, by reason.",
    ["reason"],
)
DEDUPE_HITS = Counter(
    "vitals_ingest_dedupe_hits_total",
    "Events dropped as repeats of an event_id already published, by source.",
    ["source"],
)
REQUESTS_REJECTED = Counter(
    "vitals_ingest_requests_rejected_total",
    "Requests refused before any record was read (auth, rate limit, broker down), by reason.",
    ["reason"],
)
LAST_ACCEPTED = Gauge(
    "vitals_ingest_last_accepted_timestamp_seconds",
    "When this process last had a new event of the source acknowledged by the broker (Unix "
    "time); no series until the source's first. VitalsSourceSilent reads it.",
    ["source"],
    multiprocess_mode="max",  # the latest of any worker's
)
PRODUCE_SECONDS = Histogram(
    "vitals_ingest_produce_seconds",
    "Time from handing records to the producer until the broker acknowledged all of them.",
    buckets=HTTP_LATENCY_BUCKETS,
)
RAW_INTAKE_UP = Gauge(
    "vitals_ingest_raw_intake_up",
    "1 while the raw-topic consumer runs; 0 while it restarts or after it stopped itself "
    "(see /readyz raw_intake for why). Only where the raw intake is configured.",
    ["group"],
    multiprocess_mode="min",  # one worker's intake down is the service's
)
SEGMENT_CALLS_WAITING = Counter(
    "vitals_ingest_segment_waiting_calls_total",
    "Segment calls that waited for their user's group call: held, released, expired.",
    ["outcome"],
)
