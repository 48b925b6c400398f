"""The portfolio's figures are reused while recent, and added up once per burst."""

import asyncio

from shared.recent import Recent


async def test_an_answer_is_reused_while_recent_and_computed_once_per_burst() -> None:
    calls = 0
    release = asyncio.Event()

    async def compute() -> int:
        nonlocal calls
        calls += 1
        await release.wait()
        return calls

    recent = Recent[int](3600)
    burst = asyncio.gather(*(recent.get(compute) for _ in range(5)))
    await asyncio.sleep(0)
    release.set()

    assert await burst == [1] * 5 and await recent.get(compute) == 1 and calls == 1


async def test_with_no_age_allowed_every_request_computes() -> None:
    counter = iter(range(1, 10))

    async def compute() -> int:
        return next(counter)

    recent = Recent[int](0)

    assert [await recent.get(compute) for _ in range(3)] == [1, 2, 3]
