"""Retention's movements are computed once per question while recent."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date

from services.scoring.retention import cache
from services.scoring.retention.cache import RecentMovements
from services.scoring.retention.computation import Movement

MOVE = Movement(date(2026, 1, 1), "USD", None, new=1)


async def test_a_question_is_computed_once_while_recent_and_the_oldest_is_dropped() -> None:
    asked: list[int] = []

    def compute(n: int) -> Callable[[], Awaitable[list[Movement]]]:
        async def run() -> list[Movement]:
            asked.append(n)
            return [MOVE]

        return run

    kept = RecentMovements(max_age_s=60)
    assert await kept.get("a", compute(1)) == [MOVE]
    assert await kept.get("a", compute(2)) == [MOVE]
    assert asked == [1]
    for n in range(cache.MOST_KEPT):
        await kept.get(n, compute(10 + n))
    await kept.get("a", compute(3))  # dropped as the oldest asked: computed again
    assert asked[-1] == 3
    never_kept = RecentMovements(max_age_s=0)
    await never_kept.get("a", compute(4))
    await never_kept.get("a", compute(5))
    assert asked[-2:] == [4, 5]
