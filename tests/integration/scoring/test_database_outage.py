"""While the database is away, scoring backs off rejoining, says so once, and counts
every event once when it is back (real Kafka; PostgreSQL behind a relay we cut)."""

from __future__ import annotations

import logging

import httpx
import pytest

from services.scoring.app import create_app
from tests.support.clock import FakeClock
from tests.support.kafka import produce
from tests.support.scoring_builders import usage
from tests.support.scoring_service import applied, records, settings_for
from tests.support.servers import relayed, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

RESTARTS = 5


async def test_a_database_outage_backs_off_logs_one_error_and_loses_nothing(
    kafka: str, scoring_db: str, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "shared.consumer")
    async with relayed(scoring_db) as (relay, through_relay):
        settings = settings_for(kafka, through_relay, topics, startup_retry_max_s=8.0)
        async with (
            serve(create_app(settings, FakeClock())) as base,
            httpx.AsyncClient(base_url=base) as api,
        ):
            await produce(kafka, topics["events_topic"], records([usage(event_id="before")]))
            await wait_for(applied(api, "acme", 1), 30, "the first event")
            await relay.stop()
            await produce(kafka, topics["events_topic"], records([usage(event_id="during")]))

            def delays() -> list[float]:
                return [
                    float(r.getMessage().rsplit(" ", 1)[1].rstrip("s"))
                    for r in caplog.records
                    if "consumer restarting in" in r.getMessage()
                ]

            async def restarted() -> list[float]:
                return delays() if len(delays()) >= RESTARTS else []

            backed_off = await wait_for(restarted, 90, f"{RESTARTS} restarts")
            not_ready = (await api.get("/readyz")).json()["checks"]["consumer"]
            await relay.start()
            await wait_for(applied(api, "acme", 2), 60, "the event sent during the outage")

    errors = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name == "shared.consumer"
    ]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "scoring consumer failed" in errors[0].getMessage()
    assert backed_off[:RESTARTS] == sorted(backed_off[:RESTARTS]), backed_off
    assert backed_off[RESTARTS - 1] >= 2.0, backed_off  # not a rejoin every half second
    assert not_ready.startswith("restarting after"), not_ready
    assert "127.0.0.1" not in not_ready  # the driver's message stays in the log
    assert any("recovered after" in r.getMessage() for r in caplog.records)
