"""Day arithmetic that re-scoring repeats for every account: the same few days before
today, a dozen times a re-score. Building a ``timedelta`` costs more than a look-up,
so each (day, days) is worked out once."""

from __future__ import annotations

import functools
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)


@functools.lru_cache(maxsize=1024)
def days_before(day: date, days: int) -> date:
    """``day`` moved back by ``days`` days."""
    return day - timedelta(days=days)


@functools.lru_cache(maxsize=64)
def span(days: int) -> timedelta:
    """``days`` days."""
    return timedelta(days=days)
