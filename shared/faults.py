"""Which failures pass by themselves, and how an outage is logged.

A consumer meets two kinds of failure. A *transient* one (the broker or the
database away, a lost claim on a partition) says nothing about the records in
hand: it is retried with backoff, and the batch is applied again from the stored
position. Any other exception raised while a batch is applied is taken to come from
the records themselves (a value the database refuses, arithmetic on a date out of
range): retrying would fail the same way forever, so the consumer finds the record
and dead-letters it instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiokafka.errors import KafkaError
from sqlalchemy.exc import DisconnectionError, InternalError, ProgrammingError

from shared.errors import describe, is_database_unavailable
from shared.kafka import BrokerUnavailable
from shared.offsets import Fenced
from shared.retry import Backoff

REMINDER_INTERVAL_S = 60.0


class Transient(Exception):
    """A failure of what a service depends on, raised by its own code (e.g. ingest's
    deduplication store away): passes by itself, like the library errors below."""


# Besides a database that cannot be used now (``shared.errors``, which the HTTP answers
# use too): ProgrammingError, whose usual cause is a schema that migrations have not
# brought up yet, which no record can be blamed for.
_TRANSIENT = (
    Transient,
    KafkaError,
    BrokerUnavailable,
    Fenced,
    OSError,
    TimeoutError,
    InternalError,
    ProgrammingError,
    DisconnectionError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of what a consumer depends on, not of its records."""
    return isinstance(exc, _TRANSIENT) or is_database_unavailable(exc)


class OutageLog:
    """Logs an outage as one ERROR when it starts, a WARNING reminder at most once a
    ``reminder_s``, and one INFO line when it ends, however often it is retried."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        reminder_s: float = REMINDER_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._clock = clock
        self._log = logger
        self._what = what
        self._reminder_s = reminder_s
        self._since: float | None = None
        self._reminded = 0.0
        self._failures = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    def failed(self, problem: str, retry_in_s: float) -> None:
        now = self._clock()
        self._failures += 1
        if self._since is None:
            self._since = self._reminded = now
            self._log.error("%s failed, retrying in %.1fs: %s", self._what, retry_in_s, problem)
        elif now - self._reminded >= self._reminder_s:
            self._reminded = now
            self._log.warning(
                "%s still failing after %.0fs and %d attempts: %s",
                self._what,
                now - self._since,
                self._failures,
                problem,
            )

    def recovered(self) -> None:
        if self._since is not None:
            self._log.info(
                "%s recovered after %.0fs and %d failed attempts",
                self._what,
                self._clock() - self._since,
                self._failures,
            )
        self._since = None
        self._failures = 0


class Restarts:
    """How a long-running loop restarts after a failure: with growing backoff, the reason
    on ``/readyz``, a transient failure logged as an outage (once) and any other with its
    traceback. ``recovered`` once it works again resets the backoff."""

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        report: Callable[[str | None], None],
        max_delay_s: float,
    ) -> None:
        self._log = logger
        self._what = what
        self._report = report
        self._backoff = Backoff(max_delay_s=max_delay_s)
        self._outage = OutageLog(logger, what)

    def failed(self, exc: BaseException) -> float:
        """Report and log ``exc``; returns how long to wait before restarting."""
        delay = self._backoff.next_delay()
        # The error's type only: /readyz is open, and a driver's message can quote data.
        self._report(f"restarting after {type(exc).__name__}")
        self._log.debug("%s restarting in %.3fs", self._what, delay)
        if is_transient(exc):
            self._outage.failed(describe(exc), delay)
        else:  # a fault of ours: logged once with its traceback, then retried
            self._log.error("%s failed, restarting in %.1fs", self._what, delay, exc_info=exc)
        return delay

    def recovered(self) -> None:
        self._backoff.reset()
        self._outage.recovered()
