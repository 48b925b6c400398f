"""Posted over HTTP, scored, alerted: the three services as separate processes on real
Kafka and PostgreSQL, including a SIGKILL of scoring in the middle of a stream."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.stack import UNPAID_PAST_GRACE, migrate, service_env
from tests.support.events import native_usage_json
from tests.support.processes import ServiceProcess
from tests.support.scoring_service import stored_positions
from tests.support.servers import WebhookReceiver, serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]


@dataclass
class Stack:
    ingest: ServiceProcess
    scoring: ServiceProcess
    alerts: ServiceProcess
    receiver: WebhookReceiver
    database: str


@pytest.fixture
async def stack(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> AsyncIterator[Stack]:
    receiver = WebhookReceiver()
    async with serve(receiver.app()) as hook:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/hook")
        migrate(env)
        services = [ServiceProcess(name, env, tmp_path) for name in ("ingest", "scoring", "alerts")]
        for service in services:
            service.start()
        try:
            for service in services:
                await service.wait_ready()
            ingest, scoring, alerts = services
            yield Stack(ingest, scoring, alerts, receiver, database)
        finally:
            for service in services:
                service.kill()


async def _account(stack: Stack, account_id: str) -> dict[str, object] | None:
    async with httpx.AsyncClient(base_url=stack.scoring.url) as client:
        response = await client.get(f"/v1/accounts/{account_id}")
    return response.json() if response.status_code == 200 else None


async def test_an_event_posted_over_http_is_scored_and_alerted(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.ingest.url) as ingest:
        events = [UNPAID_PAST_GRACE, native_usage_json(account_id="healthy")]
        posted = await ingest.post("/v1/events", json={"events": events})
    assert posted.status_code == 202

    async def scored() -> dict[str, object] | None:
        account = await _account(stack, "acme")
        return account if account and account["health_score"] is not None else None

    account = await wait_for(scored, 30, "acme's score")
    await wait_for(lambda: _received(stack.receiver), 30, "the alert at the webhook")
    async with httpx.AsyncClient(base_url=stack.alerts.url) as alerts:
        listed = (await alerts.get("/v1/alerts")).json()["alerts"]

    assert account["risk"] == "high"
    (alert,) = stack.receiver.received
    assert (alert["type"], alert["account_id"]) == ("alert.opened", "acme")
    assert alert["health_score"] == account["health_score"]
    assert [(a["account_id"], a["state"]) for a in listed] == [("acme", "open")]


async def _received(receiver: WebhookReceiver) -> bool:
    return bool(receiver.received)


ACCOUNTS = 20
BATCHES = 60
BATCH_SIZE = 50


async def test_scoring_killed_mid_stream_loses_and_doubles_nothing(stack: Stack) -> None:
    half_posted, killed = asyncio.Event(), asyncio.Event()
    expected: dict[str, int] = {f"acct-{n}": 0 for n in range(ACCOUNTS)}

    async def post_all() -> None:
        async with httpx.AsyncClient(base_url=stack.ingest.url) as ingest:
            for batch in range(BATCHES):
                if batch == BATCHES // 2:
                    half_posted.set()
                    await killed.wait()
                events = [_event(batch, i) for i in range(BATCH_SIZE)]
                response = await ingest.post("/v1/events", json={"events": events})
                assert response.status_code == 202, response.text
                for event in events:
                    expected[str(event["account_id"])] += 1

    poster = asyncio.create_task(post_all())
    await asyncio.wait_for(half_posted.wait(), 60)
    at_kill = await wait_for(lambda: _flushed(stack.database), 60, "scoring to flush a batch")
    stack.scoring.kill(signal.SIGKILL)
    killed.set()
    stack.scoring.start()
    await stack.scoring.wait_ready()
    await asyncio.wait_for(poster, 120)

    total = BATCHES * BATCH_SIZE
    await wait_for(lambda: _flushed(stack.database, total), 120, "scoring to catch up")
    applied = {
        account: (await _account(stack, account) or {}).get("events_applied")
        for account in expected
    }
    assert 0 < at_kill < total
    assert applied == expected


def _event(batch: int, index: int) -> dict[str, object]:
    return native_usage_json(
        account_id=f"acct-{(batch * BATCH_SIZE + index) % ACCOUNTS}",
        event_id=f"e-{batch}-{index}",
        user_id=f"u-{index % 7}",
    )


async def _flushed(database: str, at_least: int = 1) -> int:
    """Events flushed by scoring, once there are ``at_least``; 0 until then."""
    positions = await stored_positions(database)
    return positions if positions >= at_least else 0
