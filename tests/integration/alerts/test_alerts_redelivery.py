"""A receiver down for a while, then back: every pending delivery reaches it within the
longest wait between attempts (VITALS_ALERTS_RETRY_MAX_WAIT_S), on the wall clock."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, datetime

import pytest

from shared.scores import Tier
from tests.integration.alerts.conftest import StackFactory
from tests.integration.alerts.test_alerts_delivery import risky
from tests.support.alerts_receivers import Answer, HttpReceiver, serve_on
from tests.support.clock import FakeClock
from tests.support.servers import free_port, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

ALERTS = 50
CAP_S = 2.0  # the longest wait between attempts, in place of the default minute
# Sending 50 notices once the first gets through (a few dispatch rounds of 20), on a
# machine that may be busy. Still well short of the 20 s the schedule would wait after
# the third failure without the cap, so the test fails if the cap is not applied.
SENDING_ALLOWANCE_S = 10.0


class WallClock(FakeClock):
    """Real time, so that retries come due by themselves; ``now`` is when it was made."""

    def __call__(self) -> datetime:
        return datetime.now(UTC)


async def _all_arrived(receiver: HttpReceiver) -> bool:
    return len({r.headers["webhook-id"] for r in receiver.at("/hook", 200)}) == ALERTS


@pytest.mark.parametrize("outage", ["refusing", "answering 503"])
async def test_a_receiver_back_after_an_outage_gets_every_pending_delivery_within_the_cap(
    alerts_stack: StackFactory, outage: str
) -> None:
    port = free_port()
    receiver = HttpReceiver()
    channels = {
        "channels": [{"id": "hook", "kind": "webhook", "url": f"http://127.0.0.1:{port}/hook"}]
    }
    clock = WallClock(datetime.now(UTC))
    settings = {"alerts_retry_max_wait_s": CAP_S}
    async with (
        alerts_stack(channels=channels, clock=clock, **settings) as stack,
        contextlib.AsyncExitStack() as receiving,
    ):
        if outage == "answering 503":
            receiver.otherwise = Answer(503)
            await receiving.enter_async_context(serve_on(receiver.app(), port))
        await stack.send(*(risky(f"acct-{n}", Tier.B, clock) for n in range(ALERTS)))
        # Three failed attempts: past the schedule's first waits (5 s, 10 s), now capped.
        # (A refusing receiver pauses the channel: only the next due deliveries probe it.)
        await stack.wait_deliveries(
            lambda rows: (
                len(rows) == ALERTS
                and all(r.status == "pending" for r in rows)
                and max(r.attempts for r in rows) >= 3
            ),
            "the receiver to fail three times",
            timeout_s=60,
        )
        receiver.otherwise = Answer(200)
        if outage == "refusing":
            await receiving.enter_async_context(serve_on(receiver.app(), port))
        back_at = time.monotonic()
        await wait_for(lambda: _all_arrived(receiver), 30, "every delivery to arrive")
        rows = await stack.wait_deliveries(
            lambda rows: all(r.status == "delivered" for r in rows), "all marked delivered"
        )

    arrived = receiver.at("/hook", 200)
    assert {r.headers["webhook-id"] for r in arrived} == {r.id for r in rows}
    last_after_s = max(r.at for r in arrived) - back_at
    assert last_after_s <= CAP_S + SENDING_ALLOWANCE_S, (
        f"the last arrived {last_after_s:.2f} s after"
    )
    assert all(r.last_error is None for r in rows)
