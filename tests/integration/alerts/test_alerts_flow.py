from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from services.alerts.app import MIGRATIONS, create_app
from services.alerts.models import Delivery
from shared.db import create_engine, session_factory
from shared.migrations import upgrade_to_head
from shared.scores import ScoreChange
from tests.support.apps import alerts_settings
from tests.support.clock import FakeClock
from tests.support.events import score_change
from tests.support.kafka import produce
from tests.support.servers import WebhookReceiver, is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


@dataclass
class Stack:
    api: httpx.AsyncClient
    receiver: WebhookReceiver
    clock: FakeClock
    database: str


async def _migrate(database: str) -> None:
    engine = create_engine(database)
    await upgrade_to_head(engine, MIGRATIONS)
    await engine.dispose()


@pytest.fixture
async def stack(kafka: str, database: str, topics: dict[str, str]) -> AsyncIterator[Stack]:
    await _migrate(database)
    receiver, clock = WebhookReceiver(), FakeClock()
    async with serve(receiver.app()) as hook_url:
        settings = alerts_settings(
            kafka=kafka, database=database, topics=topics, alerts_webhook_url=f"{hook_url}/hook"
        )
        async with (
            serve(create_app(settings, clock)) as url,
            httpx.AsyncClient(base_url=url) as api,
        ):
            await wait_for(lambda: is_ready(api), 30, "alerts to be ready")
            yield Stack(api, receiver, clock, database)


async def _send(kafka: str, topic: str, *changes: ScoreChange) -> None:
    await produce(kafka, topic, [(c.account_id.encode(), c.to_bytes()) for c in changes])


async def _deliveries(database: str) -> list[Delivery]:
    engine = create_engine(database)
    async with session_factory(engine)() as session:
        rows = list((await session.scalars(select(Delivery).order_by(Delivery.created_at))).all())
    await engine.dispose()
    return rows


async def test_a_low_score_opens_one_alert_delivered_once_then_resolves(
    stack: Stack, kafka: str, topics: dict[str, str]
) -> None:
    low = score_change(account_id="acme", sequence=1, health_score=20, previous_score=None)
    await _send(kafka, topics["scores_topic"], low, low)  # the repeat must change nothing

    await wait_for(lambda: _count(stack.receiver, 1), 30, "the alert at the webhook")
    listed = (await stack.api.get("/v1/alerts", params={"state": "open"})).json()["alerts"]

    await _send(
        kafka,
        topics["scores_topic"],
        score_change(account_id="acme", sequence=2, health_score=75, previous_score=20),
    )
    await wait_for(lambda: _count(stack.receiver, 2), 30, "the resolved notice")

    opened, resolved = stack.receiver.received
    assert opened["type"] == "alert.opened" and opened["account_id"] == "acme"
    assert opened["summary"] == "Churn risk high: health 20 below 40"
    assert resolved["type"] == "alert.resolved" and resolved["alert_id"] == opened["alert_id"]
    assert [a["id"] for a in listed] == [opened["alert_id"]]
    assert stack.receiver.headers[0]["webhook-id"]
    after = (await stack.api.get("/v1/alerts", params={"account_id": "acme"})).json()["alerts"]
    assert [a["state"] for a in after] == ["resolved"]


async def test_a_failing_receiver_is_retried_on_schedule(
    stack: Stack, kafka: str, topics: dict[str, str]
) -> None:
    stack.receiver.statuses = [500]
    await _send(kafka, topics["scores_topic"], score_change(account_id="b", health_score=5))

    failed = await wait_for(lambda: _attempted(stack.database), 30, "the first attempt")
    stack.clock.advance(timedelta(seconds=6))
    await wait_for(lambda: _count(stack.receiver, 1), 30, "the retried delivery")
    (delivered,) = await _deliveries(stack.database)

    assert failed.last_error == "HTTP 500 from the receiver"
    first_try = stack.clock.now - timedelta(seconds=6)
    assert first_try + timedelta(seconds=5) <= failed.next_attempt_at <= stack.clock.now
    assert (delivered.status, delivered.attempts) == ("delivered", 2)


async def _count(receiver: WebhookReceiver, count: int) -> bool:
    assert len(receiver.received) <= count, f"more deliveries than expected: {receiver.received}"
    return len(receiver.received) == count


async def _attempted(database: str) -> Delivery | None:
    rows = await _deliveries(database)
    return rows[0] if rows and rows[0].attempts == 1 else None


async def test_a_delivery_is_dead_after_its_last_attempt(
    kafka: str, database: str, topics: dict[str, str]
) -> None:
    await _migrate(database)
    receiver = WebhookReceiver(statuses=[503, 503])
    async with serve(receiver.app()) as hook_url:
        settings = alerts_settings(
            kafka=kafka,
            database=database,
            topics=topics,
            alerts_webhook_url=f"{hook_url}/hook",
            alerts_delivery_max_attempts=2,
        )
        clock = FakeClock()
        async with (
            serve(create_app(settings, clock)) as url,
            httpx.AsyncClient(base_url=url) as api,
        ):
            # Like the other tests: the consumer is in its group before the message comes.
            await wait_for(lambda: is_ready(api), 30, "alerts to be ready")
            await _send(kafka, topics["scores_topic"], score_change(account_id="c", health_score=1))
            await wait_for(lambda: _attempted(database), 30, "the first attempt")
            clock.advance(timedelta(minutes=1))
            (dead,) = await wait_for(lambda: _dead(database), 30, "the delivery to die")

    assert (dead.attempts, dead.last_error) == (2, "HTTP 503 from the receiver")
    assert receiver.received == []


async def _dead(database: str) -> list[Delivery]:
    return [d for d in await _deliveries(database) if d.status == "dead"]
