"""Delivery policy: retry schedule and digest timing. Pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

# Waits after the 1st, 2nd, ... failed attempt; the last one repeats until the limit.
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=24),
)
MAX_RETRY_AFTER = timedelta(hours=24)
JITTER = 0.2


def retry_delay(
    attempts: int, max_attempts: int, retry_after_s: float | None, jitter: float = 0.0
) -> timedelta | None:
    """Wait before the next attempt after ``attempts`` failures; ``None``: give up.

    ``jitter`` in [0, 1) stretches the wait by up to 20% so that many deliveries
    failing together do not all come back at once; a receiver's Retry-After is
    honoured (up to a day) when it asks for longer.
    """
    if attempts >= max_attempts:
        return None
    delay = RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1] * (1 + JITTER * jitter)
    if retry_after_s is not None:
        delay = max(delay, min(timedelta(seconds=retry_after_s), MAX_RETRY_AFTER))
    return delay


def digest_day(now: datetime, hour_utc: int) -> date | None:
    """The day whose digest is due at ``now`` (sent from ``hour_utc`` on), if any."""
    today = now.astimezone(UTC)
    if today.time() < time(hour_utc):
        return None
    return today.date()
