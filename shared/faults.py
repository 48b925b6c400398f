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
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from shared.kafka import BrokerUnavailable
from shared.offsets import Fenced

REMINDER_INTERVAL_S = 60.0

# ProgrammingError is here because its usual cause is a schema that migrations have
# not brought up yet, which no record can be blamed for.
_TRANSIENT = (
    KafkaError,
    BrokerUnavailable,
    Fenced,
    OSError,
    TimeoutError,
    OperationalError,
    InterfaceError,
    InternalError,
    ProgrammingError,
    DisconnectionError,
    PoolTimeout,
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a failure of what a consumer depends on, not of its records."""
    if isinstance(exc, _TRANSIENT):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def describe(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, first line only and bounded: what a dead letter or probe says."""
    text = str(exc).strip().splitlines()
    first = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
    return first[:limit]


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
