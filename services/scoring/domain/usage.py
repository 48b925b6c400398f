"""Running totals of an account's usage, so that scoring reads any window in O(log n).

Re-scoring asks for many windows of the same ~120 days of usage (each measure, each
risk rule and each of its ``for_days``). Rebuilding their sums on every re-score cost
more than anything else in it, so the fold keeps these totals in step, one event at a
time. They are derived from ``AccountState.usage`` and never stored: a state read
from the database builds them again on first use.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Protocol

# What a pickle of ``UsageTotals`` holds: its days, totals and features' last days.
_Parts = tuple[list[date], list[int], dict[str, date]]


class DayCounts(Protocol):
    events: int
    features: dict[str, int]


class UsageTotals:
    """The usage days in order; ``totals[i]``: events before ``days[i]`` (from an
    arbitrary base: only differences are read); ``last_used``: each raw feature name's
    latest day."""

    __slots__ = ("days", "last_used", "totals")

    def __init__(self, usage: Mapping[date, DayCounts]) -> None:
        self.days = sorted(usage)
        self.totals = [0, *itertools.accumulate(usage[day].events for day in self.days)]
        self.last_used: dict[str, date] = {}
        for day in self.days:
            self.used(usage[day].features, day)

    def __reduce__(self) -> tuple[Callable[..., UsageTotals], _Parts]:
        # Compiled (mypyc), the class has no __dict__ for copy and pickle to read.
        return _restored, (self.days, self.totals, self.last_used)

    def add(self, day: date) -> None:
        """One more event on ``day``: O(1) in time order, O(days after it) when late."""
        days, totals = self.days, self.totals
        if days and day == days[-1]:
            totals[-1] += 1
            return
        if not days or day > days[-1]:
            days.append(day)
            totals.append(totals[-1] + 1)
            return
        index = bisect.bisect_left(days, day)
        if days[index] != day:
            days.insert(index, day)
            totals.insert(index + 1, totals[index])
        for later in range(index + 1, len(totals)):
            totals[later] += 1

    def used(self, features: Iterable[str], day: date) -> None:
        last = self.last_used
        for name in features:
            seen = last.get(name)
            if seen is None or seen < day:
                last[name] = day

    def forget_through(self, horizon: date) -> list[date]:
        """Drop the days at or before ``horizon``, as the state does; return them."""
        cut = bisect.bisect_right(self.days, horizon)
        dropped = self.days[:cut]
        if cut:
            del self.days[:cut]
            del self.totals[:cut]
        last = self.last_used
        if last and min(last.values()) <= horizon:  # on most days no name is that old
            self.last_used = {name: day for name, day in last.items() if day > horizon}
        return dropped

    def between(self, after: date, until: date) -> int:
        """Events on the days in (``after``, ``until``]."""
        days, totals = self.days, self.totals
        return totals[bisect.bisect_right(days, until)] - totals[bisect.bisect_right(days, after)]

    def names_used(self, after: date, until: date) -> list[str] | None:
        """Raw feature names used on a day in (``after``, ``until``]; None when a name's
        latest day is past ``until`` (an event stamped after the moment scored), which
        its latest day alone cannot answer."""
        names = []
        for name, day in self.last_used.items():
            if day > until:
                return None
            if day > after:
                names.append(name)
        return names


def _restored(days: list[date], totals: list[int], last_used: dict[str, date]) -> UsageTotals:
    restored = UsageTotals({})
    restored.days, restored.totals, restored.last_used = days, totals, last_used
    return restored
