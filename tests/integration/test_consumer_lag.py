"""Consumer lag on /metrics, on real Kafka and PostgreSQL: it rises while a consumer
is stopped (its database cut off behind a relay) and falls back to zero once it has
caught up."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from fastapi import FastAPI

from services.alerts.app import MIGRATIONS as ALERTS_MIGRATIONS
from services.alerts.app import create_app as create_alerts
from services.scoring.app import create_app as create_scoring
from tests.support.apps import alerts_settings
from tests.support.clock import FakeClock
from tests.support.events import score_change
from tests.support.infra import migrated_to
from tests.support.kafka import produce
from tests.support.processes import metric_total
from tests.support.scoring_builders import usage
from tests.support.scoring_service import records, settings_for
from tests.support.servers import relayed, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]

WAITING = 12


async def test_scoring_lag_rises_while_its_consumer_is_stopped_and_falls_once_caught_up(
    kafka: str, scoring_db: str, topics: dict[str, str]
) -> None:
    events = topics["events_topic"]
    async with relayed(scoring_db) as (relay, database):
        app = create_scoring(settings_for(kafka, database, topics), FakeClock())
        async with served(app) as metrics:
            await produce(kafka, events, records([usage(event_id="first")]))
            await wait_for(metrics.lag_is("scoring", events, 0), 30, "the first event applied")
            await relay.stop()
            batch = [usage(account_id=f"a{n}", event_id=f"during-{n}") for n in range(WAITING)]
            await produce(kafka, events, records(batch))
            await wait_for(metrics.lag_is("scoring", events, WAITING), 30, "the lag to rise")
            await relay.start()
            await wait_for(metrics.lag_is("scoring", events, 0), 60, "the lag to clear")


async def test_alerts_lag_rises_while_its_consumer_is_stopped_and_falls_once_caught_up(
    kafka: str, database: str, topics: dict[str, str]
) -> None:
    scores = topics["scores_topic"]
    await migrated_to(database, ALERTS_MIGRATIONS)
    async with relayed(database) as (relay, through_relay):
        settings = alerts_settings(kafka=kafka, database=through_relay, topics=topics)
        async with served(create_alerts(settings, FakeClock())) as metrics:
            await produce(kafka, scores, [(b"acme", score_change().to_bytes())])
            await wait_for(metrics.lag_is("alerts", scores, 0), 30, "the first change applied")
            await relay.stop()
            changes = [score_change(account_id=f"a{n}") for n in range(WAITING)]
            await produce(kafka, scores, [(c.account_id.encode(), c.to_bytes()) for c in changes])
            await wait_for(metrics.lag_is("alerts", scores, WAITING), 30, "the lag to rise")
            await relay.start()
            await wait_for(metrics.lag_is("alerts", scores, 0), 60, "the lag to clear")


class Metrics:
    def __init__(self, client: httpx.AsyncClient) -> None:
        self._client = client

    async def lag(self, consumer: str, topic: str) -> float | None:
        """The consumer's lag summed over the topic's partitions; None until measured."""
        text = (await self._client.get("/metrics")).text
        return metric_total(text, "vitals_consumer_lag_records", consumer=consumer, topic=topic)

    def lag_is(self, consumer: str, topic: str, expected: int) -> Callable[[], Awaitable[bool]]:
        async def condition() -> bool:
            return await self.lag(consumer, topic) == expected

        return condition


@contextlib.asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[Metrics]:
    async with serve(app) as base, httpx.AsyncClient(base_url=base) as client:
        yield Metrics(client)
