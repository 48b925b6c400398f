from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_APPLIED = Counter("vitals_scoring_events_applied_total", "Events folded into account state.")
EVENTS_DUPLICATE = Counter(
    "vitals_scoring_events_duplicate_total", "Events skipped because their id was seen."
)
EVENTS_TOO_LATE = Counter(
    "vitals_scoring_events_too_late_total",
    "Events older than the lateness bound behind their account's latest; sent to the DLQ.",
)
EVENTS_UNREADABLE = Counter(
    "vitals_scoring_events_unreadable_total",
    "Records on the events topic that are not a valid event; sent to the DLQ.",
)
SCORE_CHANGES = Counter(
    "vitals_scoring_score_changes_total", "Material score changes recorded.", ["band"]
)
SCORES_PUBLISHED = Counter(
    "vitals_scoring_score_messages_published_total", "Score changes sent to the scores topic."
)
DEAD_LETTERS_PUBLISHED = Counter(
    "vitals_scoring_dead_letters_published_total", "Dead letters sent to the DLQ topic.", ["reason"]
)
SWEEP_ACCOUNTS = Counter(
    "vitals_scoring_sweep_accounts_total", "Accounts re-scored by the periodic sweep."
)
SWEEP_SECONDS = Histogram(
    "vitals_scoring_sweep_seconds",
    "Wall time of one complete sweep over the owned accounts.",
    buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600),
)
SWEEP_LAST_COMPLETED = Gauge(
    "vitals_scoring_sweep_last_completed_timestamp_seconds",
    "When the last complete sweep finished (by the service clock).",
    multiprocess_mode="max",
)
SWEEP_INTERVAL = Gauge(
    "vitals_scoring_sweep_interval_seconds",
    "How often each replica re-scores all its accounts (VITALS_SCORING_SWEEP_INTERVAL_S).",
    multiprocess_mode="max",
)
OVERRIDES_LAPSED = Counter(
    "vitals_scoring_overrides_lapsed_total", "CSM overrides that reached their expiry."
)
STATES_CACHED = Gauge(
    "vitals_scoring_states_cached",
    "Account states held in memory between batches.",
    multiprocess_mode="sum",
)
STATES_LOADED = Counter(
    "vitals_scoring_states_loaded_total",
    "Account states read from the database (not in memory); new accounts not counted.",
)
