"""Alert rules and delivery policy: pure functions, no I/O."""

from __future__ import annotations

import uuid
from datetime import timedelta
from enum import StrEnum
from typing import Any

from shared.scores import ScoreChange

HEALTH_BELOW_THRESHOLD = "health_below_threshold"
ALERT_ID_NAMESPACE = uuid.UUID("1f6f3f3c-6c3b-4c55-9d1e-6a0e7c1f2b51")
# Waits after the 1st, 2nd, ... failed attempt; the last one repeats until the limit.
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(seconds=30),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
    timedelta(hours=24),
)
MAX_RETRY_AFTER = timedelta(hours=24)


class Transition(StrEnum):
    opened = "opened"
    resolved = "resolved"


def evaluate_health(change: ScoreChange, is_open: bool, threshold: int) -> Transition | None:
    """Open when the score falls below the threshold, resolve when it is back."""
    below = change.health_score < threshold
    if below and not is_open:
        return Transition.opened
    if not below and is_open:
        return Transition.resolved
    return None


def alert_id(account_id: str, rule: str, episode: int) -> str:
    """The same (account, rule, episode) always gives the same id, on any replica."""
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{account_id}\x1f{rule}\x1f{episode}"))


def delivery_id(alert: str, transition: Transition, channel: str) -> str:
    return str(uuid.uuid5(ALERT_ID_NAMESPACE, f"{alert}\x1f{transition}\x1f{channel}"))


def retry_delay(attempts: int, max_attempts: int, retry_after_s: float | None) -> timedelta | None:
    """Wait before the next attempt after ``attempts`` failures; ``None``: give up."""
    if attempts >= max_attempts:
        return None
    delay = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1]
    if retry_after_s is not None:
        delay = max(delay, min(timedelta(seconds=retry_after_s), MAX_RETRY_AFTER))
    return delay


def webhook_payload(
    alert: str, rule: str, transition: Transition, change: ScoreChange, threshold: int
) -> dict[str, Any]:
    verb = "fell below" if transition is Transition.opened else "is back at or above"
    return {
        "type": f"alert.{transition.value}",
        "alert_id": alert,
        "rule": rule,
        "account_id": change.account_id,
        "health_score": change.health_score,
        "previous_score": change.previous_score,
        "band": change.band.value,
        "components": change.components,
        "summary": (
            f"Health of {change.account_id} {verb} {threshold}: "
            f"{change.previous_score if change.previous_score is not None else '-'}"
            f" -> {change.health_score} ({change.band.value})"
        ),
        "computed_at": change.computed_at.isoformat(),
    }
