from __future__ import annotations

from prometheus_client import Counter

EVENTS_APPLIED = Counter("vitals_scoring_events_applied_total", "Events folded into account state.")
EVENTS_DUPLICATE = Counter(
    "vitals_scoring_events_duplicate_total", "Events skipped because their id was seen."
)
EVENTS_UNREADABLE = Counter(
    "vitals_scoring_events_unreadable_total",
    "Records on the events topic that are not a valid event (logged with their offset).",
)
SCORE_CHANGES = Counter(
    "vitals_scoring_score_changes_total", "Material score changes recorded.", ["band"]
)
SCORES_PUBLISHED = Counter(
    "vitals_scoring_score_messages_published_total", "Score changes sent to the scores topic."
)
