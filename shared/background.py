"""Background tasks that live exactly as long as a ``with`` block."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

from shared.errors import describe
from shared.health import Readiness

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def running(
    work: Coroutine[Any, Any, None], name: str, readiness: Readiness | None = None
) -> AsyncIterator[asyncio.Task[None]]:
    """Run ``work`` as a task; on leaving, cancel it and wait until it has stopped.

    ``work`` is meant to run until cancelled. If it ends by itself, that is logged
    once with its exception, and ``readiness`` marks ``name`` as failed for good, so
    ``/readyz`` and ``/healthz`` both say so instead of looking healthy."""
    task = asyncio.create_task(work, name=name)
    task.add_done_callback(lambda done: _ended(done, name, readiness))
    try:
        yield task
    finally:
        task.cancel()
        # An exception of the task's own was logged when it ended (``_ended``).
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def _ended(task: asyncio.Task[None], name: str, readiness: Readiness | None) -> None:
    if task.cancelled():
        return
    exc = task.exception()
    problem = f"stopped: {describe(exc)}" if exc is not None else "stopped"
    log.error("background task %s %s", name, problem, exc_info=exc)
    if readiness is not None:
        readiness.fail(name, problem)
