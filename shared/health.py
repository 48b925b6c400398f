"""Readiness: what a service still waits for, as ``/readyz`` reports it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from shared.metrics import READINESS_CHECK_OK
from shared.retry import Backoff

Probe = Callable[[], Awaitable[str | None]]
PROBE_TIMEOUT_S = 2.0


class Readiness:
    """Named checks, each either fine (``None``) or a problem a person can read.

    Background workers ``report`` the state of what they own (the broker, the
    partitions); probes are run on every ``/readyz`` request (the database).
    """

    def __init__(self, *checks: str) -> None:
        self._problems: dict[str, str | None] = {name: "starting" for name in checks}
        self._probes: dict[str, Probe] = {}
        self._fatal: dict[str, str] = {}
        self._liveness: dict[str, Callable[[], str | None]] = {}

    def reporter(self, check: str) -> Callable[[str | None], None]:
        def report(problem: str | None) -> None:
            self._problems[check] = problem

        return report

    def report(self, check: str, problem: str | None) -> None:
        self._problems[check] = problem

    def add_probe(self, check: str, probe: Probe) -> None:
        self._probes[check] = probe

    def fail(self, check: str, problem: str) -> None:
        """``check`` broke for good: the process cannot recover by itself (liveness fails)."""
        self._fatal[check] = problem
        self._problems[check] = problem

    def add_liveness(self, check: str, probe: Callable[[], str | None]) -> None:
        """A cheap check that says why the process is stuck, or None while it is not."""
        self._liveness[check] = probe

    def liveness(self) -> dict[str, str]:
        """What keeps the process from recovering by itself; empty while it is alive."""
        problems = dict(self._fatal)
        for name, probe in self._liveness.items():
            if (problem := probe()) is not None:
                problems[name] = problem
        return problems

    async def evaluate(self) -> dict[str, str]:
        results = dict(self._problems)
        for name, probe in self._probes.items():
            try:
                results[name] = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
            except TimeoutError:
                results[name] = f"no answer within {PROBE_TIMEOUT_S:g}s"
        checks = {name: problem or "ok" for name, problem in results.items()}
        for name, problem in checks.items():
            READINESS_CHECK_OK.labels(name).set(1 if problem == "ok" else 0)
        return checks


async def wait_until_fine(
    probe: Probe, report: Callable[[str | None], None], max_delay_s: float
) -> None:
    """Probe with backoff until it finds nothing wrong, reporting what it finds."""
    backoff = Backoff(max_delay_s=max_delay_s)
    while (problem := await probe()) is not None:
        report(problem)
        await asyncio.sleep(backoff.next_delay())
    report(None)
