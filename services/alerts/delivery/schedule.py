"""Delivery policy: retry schedule and digest timing. Pure functions, no I/O."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

# Waits after the 1st, 2nd, ... failed attempt; the last one repeats until the limit.
# Short, so that a receiver back after an outage gets its backlog within a minute.
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(seconds=10),
    timedelta(seconds=20),
    timedelta(seconds=40),
    timedelta(seconds=50),
)
MAX_RETRY_WAIT = timedelta(seconds=60)
MAX_RETRY_AFTER = timedelta(hours=24)
JITTER = 0.2


def retry_delay(
    attempts: int,
    max_attempts: int,
    retry_after_s: float | None,
    jitter: float = 0.0,
    max_wait: timedelta = MAX_RETRY_WAIT,
) -> timedelta | None:
    """Wait before the next attempt after ``attempts`` failures; ``None``: give up.

    ``jitter`` in [0, 1) stretches the wait by up to 20% so that many deliveries
    failing together do not all come back at once; with it the wait is at most
    ``max_wait``. A receiver's Retry-After is honoured (up to a day) when it asks
    for longer.
    """
    if attempts >= max_attempts:
        return None
    planned = min(RETRY_SCHEDULE[min(attempts, len(RETRY_SCHEDULE)) - 1], max_wait / (1 + JITTER))
    delay = min(planned * (1 + JITTER * jitter), max_wait)
    if retry_after_s is not None:
        delay = max(delay, min(timedelta(seconds=retry_after_s), MAX_RETRY_AFTER))
    return delay


def digest_day(now: datetime, hour_utc: int) -> date | None:
    """The day whose digest is due at ``now`` (sent from ``hour_utc`` on), if any."""
    today = now.astimezone(UTC)
    if today.time() < time(hour_utc):
        return None
    return today.date()
