"""Retention's movements, reused while recent: they add up every account's months
(seconds at a million accounts) and change only as billing events come."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable

from services.scoring.retention.computation import Movement
from shared.recent import Recent

MOST_KEPT = 32
"""Different questions (range, grain, grouping, filters) kept at once; the oldest asked
is dropped past it."""


class RecentMovements:
    """Per question, its movements, computed at most once per ``max_age_s``. Only the
    database's part is kept: converting to the home currency happens at each request,
    so new rates count at once."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._kept: OrderedDict[Hashable, Recent[list[Movement]]] = OrderedDict()

    async def get(
        self, key: Hashable, compute: Callable[[], Awaitable[list[Movement]]]
    ) -> list[Movement]:
        recent = self._kept.get(key)
        if recent is None:
            recent = self._kept[key] = Recent(self._max_age_s)
            while len(self._kept) > MOST_KEPT:
                self._kept.popitem(last=False)
        else:
            self._kept.move_to_end(key)
        return await recent.get(compute)
