"""JSON logs on stderr, one object per line, for every service."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from pythonjsonlogger.json import JsonFormatter

FORMAT = "%(levelname)s %(name)s %(message)s"
REPEAT_WINDOW_S = 60.0
QUIETED = ("aiokafka",)
"""Libraries that log every failed attempt of their own retry loops; ours say it once."""


class RepeatFilter(logging.Filter):
    """Lets through the first line of each message (same logger, same template) in a
    ``window_s``; the next one that passes says how many were held back meanwhile, as
    ``repeats_suppressed``. Applied to ``QUIETED`` loggers only: a broker outage
    otherwise writes an ERROR line per connection attempt."""

    def __init__(
        self, window_s: float = REPEAT_WINDOW_S, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self._window_s = window_s
        self._clock = clock
        self._seen: dict[tuple[str, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(QUIETED):
            return True
        key = (record.name, str(record.msg))
        now = self._clock()
        shown_at, held = self._seen.get(key, (float("-inf"), 0))
        if now - shown_at < self._window_s:
            self._seen[key] = (shown_at, held + 1)
            return False
        self._seen[key] = (now, 0)
        if held:
            record.repeats_suppressed = held
        return True


def configure_logging(level: str, service: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter(
            FORMAT,
            rename_fields={"levelname": "level", "name": "logger"},
            static_fields={"service": service},
            timestamp="time",
        )
    )
    handler.addFilter(RepeatFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiokafka logs every reconnect attempt at ERROR; our own retry loop reports those.
    logging.getLogger("aiokafka").setLevel(max(logging.getLevelName(level), logging.WARNING))
    # Every /readyz reads the schema version, and alembic says two INFO lines each time.
    logging.getLogger("alembic.runtime.migration").setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
