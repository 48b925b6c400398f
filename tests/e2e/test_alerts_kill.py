"""SIGKILL of the alerts service in the middle of a stream of score changes: after a
restart every notice reaches a real signed-webhook receiver exactly once (counted by
``webhook-id``), every transition is on ``vitals.alerts``, and nothing is doubled.
The service runs as its own process on the real Kafka and PostgreSQL."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select
from standardwebhooks import Webhook

from services.alerts.delivery.dispatcher import CLAIM_BATCH
from services.alerts.models import Alert, AlertEventRow, Delivery
from services.alerts.rules.engine import alert_id, notice_id
from shared.db import create_engine, session_factory
from shared.scores import Risk, ScoreChange
from tests.e2e.stack import migrate, service_env
from tests.support.alerts_messages import enriched_change, facts, later
from tests.support.alerts_receivers import HttpReceiver, Recorded
from tests.support.kafka import consume, produce_many
from tests.support.processes import ServiceProcess
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
ACCOUNTS = 300
CHUNKS = 10
RULE = "churn_risk_raised"
CHANNEL = "webhook"
CHUNK_PAUSE_S = 0.3


def account_messages(account_id: str, now: datetime) -> list[ScoreChange]:
    """Risk goes high (opened), the same message again, then back to low (resolved),
    then the first message once more, late: 2 notices, whatever is replayed."""
    risky = enriched_change(
        account_id=account_id,
        risk=Risk.high,
        previous_risk=Risk.low,
        risk_reasons=["payment failed"],
        computed_at=now,
        account=facts(last_usage_at=now),
    )
    calm = later(risky, timedelta(minutes=1), risk=Risk.low, risk_reasons=[])
    return [risky, risky, calm, risky]


def expected_ids(account_id: str) -> dict[str, str]:
    alert = alert_id(account_id, RULE, 1)
    return {
        notice_id(alert, 1, CHANNEL): "alert.opened",
        notice_id(alert, 2, CHANNEL): "alert.resolved",
    }


def verified(request: Recorded) -> dict[str, object]:
    headers = {k: v for k, v in request.headers.items() if k.startswith("webhook-")}
    payload: dict[str, object] = Webhook(SECRET).verify(request.body, headers)
    return payload


async def test_alerts_killed_mid_stream_lose_and_double_nothing(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> None:
    receiver = HttpReceiver()
    alerts_topic = f"{topics['scores_topic']}.alerts"
    now = datetime.now(UTC)
    accounts = [f"acct-{n:03d}" for n in range(ACCOUNTS)]
    chunk = ACCOUNTS // CHUNKS

    sent = 0

    async def stream() -> None:
        """One chunk of accounts after another, paced so the kill lands mid-stream."""
        nonlocal sent
        for index in range(CHUNKS):
            owned = accounts[index * chunk : (index + 1) * chunk]
            messages = [m for a in owned for m in account_messages(a, now)]
            records = [(m.account_id.encode(), m.to_bytes()) for m in messages]
            await produce_many(kafka, topics["scores_topic"], records)
            sent += 1
            await asyncio.sleep(CHUNK_PAUSE_S)

    async with serve(receiver.app()) as url:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{url}/hook")
        env |= {
            "VITALS_ALERTS_WEBHOOK_SECRET": SECRET,
            "VITALS_ALERTS_TOPIC": alerts_topic,
            "VITALS_ALERTS_DISPATCH_INTERVAL_S": "0.2",
        }
        migrate(env)
        service = ServiceProcess("alerts", env, tmp_path)
        service.start()
        try:
            await service.wait_ready()
            streaming = asyncio.create_task(stream())
            at_kill = await wait_for(lambda: _some_delivered(receiver), 30, "first deliveries")
            service.kill(signal.SIGKILL)
            chunks_at_kill = sent
            service.start()
            await service.wait_ready()
            await asyncio.wait_for(streaming, 30)
            await wait_for(lambda: _all_settled(database), 45, "every delivery and event")
        finally:
            service.kill()

    expected = {i: kind for a in accounts for i, kind in expected_ids(a).items()}
    received = {r.headers["webhook-id"]: verified(r) for r in receiver.at("/hook")}
    assert 0 < at_kill < len(expected) and chunks_at_kill < CHUNKS
    assert received.keys() == expected.keys()
    assert {i: body["type"] for i, body in received.items()} == expected
    assert await _counts(database) == (ACCOUNTS, 2 * ACCOUNTS, 2 * ACCOUNTS)
    published = await consume(kafka, alerts_topic, 2 * ACCOUNTS)
    event_ids = {_event_id(record.value) for record in published}
    assert len(event_ids) == 2 * ACCOUNTS
    # Only the batch in flight at the kill can be sent again, with the same webhook-id.
    assert len(receiver.requests) - len(received) <= CLAIM_BATCH


def _event_id(value: bytes | None) -> str:
    return str(orjson.loads(value or b"{}")["event_id"])


async def _some_delivered(receiver: HttpReceiver) -> int:
    return len(receiver.requests) if len(receiver.requests) >= 20 else 0


async def _all_settled(database: str) -> bool:
    alerts, deliveries, events = await _counts(database)
    if (alerts, deliveries, events) != (ACCOUNTS, 2 * ACCOUNTS, 2 * ACCOUNTS):
        return False
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            pending = await session.scalar(
                select(func.count()).where(Delivery.status != "delivered")
            )
            unpublished = await session.scalar(
                select(func.count()).where(AlertEventRow.published_at.is_(None))
            )
    finally:
        await engine.dispose()
    return pending == 0 and unpublished == 0


async def _counts(database: str) -> tuple[int, int, int]:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            counted = [
                await session.scalar(select(func.count()).select_from(table))
                for table in (Alert, Delivery, AlertEventRow)
            ]
    finally:
        await engine.dispose()
    return (int(counted[0] or 0), int(counted[1] or 0), int(counted[2] or 0))
