"""An answer reused while it is recent: for reads that are costly and need not be
to the second (the portfolio's figures, the scorecards a page shows)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Recent(Generic[T]):
    """The last answer, reused while younger than ``max_age_s``; one computation at a
    time, so a burst of requests on a stale answer computes it once."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._lock = asyncio.Lock()
        self._value: tuple[float, T] | None = None

    async def get(self, compute: Callable[[], Awaitable[T]]) -> T:
        if (value := self._fresh()) is not None:
            return value
        async with self._lock:
            if (value := self._fresh()) is not None:
                return value
            computed = await compute()
            self._value = (time.monotonic(), computed)
            return computed

    def _fresh(self) -> T | None:
        if self._value is None or time.monotonic() - self._value[0] >= self._max_age_s:
            return None
        return self._value[1]
