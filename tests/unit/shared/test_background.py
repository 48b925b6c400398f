"""A background task that ends by itself does not leave the service looking healthy."""

import asyncio

import pytest

from shared.background import running
from shared.health import Readiness


async def test_a_background_task_that_ends_marks_the_service_failed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    readiness = Readiness("worker")

    async def crashes() -> None:
        raise OverflowError("date value out of range")

    async with running(crashes(), "worker", readiness) as task:
        await asyncio.wait({task})
        await asyncio.sleep(0)  # done callbacks run on the next loop pass
        checks = await readiness.evaluate()
        liveness = readiness.liveness()

    assert checks == {"worker": "stopped: OverflowError: date value out of range"}
    assert liveness == checks
    assert "background task worker stopped" in caplog.text
