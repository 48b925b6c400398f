from __future__ import annotations

from prometheus_client import Counter, Histogram

ALERT_TRANSITIONS = Counter(
    "vitals_alerts_transitions_total", "Alerts opened and resolved.", ["rule", "transition"]
)
SCORES_UNREADABLE = Counter(
    "vitals_alerts_score_messages_unreadable_total",
    "Records on the scores topic that are not a valid score change (logged with their offset).",
)
SCORES_DUPLICATE = Counter(
    "vitals_alerts_score_messages_duplicate_total",
    "Score changes dropped because their sequence was already applied.",
)
DELIVERIES = Counter(
    "vitals_alerts_deliveries_total",
    "Delivery attempts by channel and outcome (delivered, retry, dead).",
    ["channel", "outcome"],
)
DELIVERY_SECONDS = Histogram(
    "vitals_alerts_delivery_seconds",
    "Time one delivery attempt took.",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
