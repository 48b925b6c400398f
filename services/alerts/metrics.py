"""Every metric of the alerts service. Label values are small sets (rule, tier, channel)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ALERTS_OPENED = Counter(
    "vitals_alerts_opened_total", "Alerts opened, by rule and account tier.", ["rule", "tier"]
)
ALERTS_RESOLVED = Counter(
    "vitals_alerts_resolved_total", "Alerts resolved, by rule and account tier.", ["rule", "tier"]
)
ALERT_TRANSITIONS = Counter(
    "vitals_alerts_transitions_total",
    "Alert transitions (opened, escalated, reminded, resolved), notified or muted.",
    ["rule", "transition"],
)
SCORES_UNREADABLE = Counter(
    "vitals_alerts_score_messages_unreadable_total",
    "Records on the scores topic that are not a valid score change; sent to the DLQ.",
)
DEAD_LETTERS_PUBLISHED = Counter(
    "vitals_alerts_dead_letters_published_total",
    "Dead letters (unusable score messages) sent to the DLQ topic, by reason.",
    ["reason"],
)
SCORES_DUPLICATE = Counter(
    "vitals_alerts_score_messages_duplicate_total",
    "Score changes dropped because their sequence was already applied.",
)
DELIVERIES = Counter(
    "vitals_alerts_deliveries_total",
    "Delivery attempts by channel and outcome (delivered, retry, dead, gone).",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "vitals_alerts_delivery_seconds",
    "Time one delivery attempt took.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
SCORE_TO_DELIVERY_SECONDS = Histogram(
    "vitals_alerts_score_to_delivery_seconds",
    "From the score message on the topic to its notice delivered, by channel kind.",
    ["kind"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200, 86400),
)
OUTBOX_PENDING = Gauge(
    "vitals_alerts_outbox_pending",
    "Deliveries waiting in the outbox (pending).",
    multiprocess_mode="mostrecent",
)
OUTBOX_OLDEST_AGE_SECONDS = Gauge(
    "vitals_alerts_outbox_oldest_age_seconds",
    "Age of the oldest pending delivery; 0 if none.",
    multiprocess_mode="mostrecent",
)
DELIVERIES_DEAD = Gauge(
    "vitals_alerts_deliveries_dead",
    "Deliveries marked dead after their last attempt.",
    multiprocess_mode="mostrecent",
)
CHANNELS_DISABLED = Counter(
    "vitals_alerts_channels_disabled_total",
    "Channels disabled because the receiver answered 410 Gone.",
    ["channel"],
)
EVENTS_PUBLISHED = Counter(
    "vitals_alerts_events_published_total", "Alert transitions published to the alerts topic."
)
