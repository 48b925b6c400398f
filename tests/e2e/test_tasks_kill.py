"""SIGKILL of the alerts service while playbooks are making tasks and overdue tasks
are escalated: afterwards there is exactly one task per playbook step and trigger
episode, and each task reached the escalation receiver under exactly one
``webhook-id``. The service runs as its own process on the real Kafka and PostgreSQL.

Every task is overdue as soon as it exists (a 0-day service level on a seven-day
week ending at midnight, no grace), so escalation runs alongside the consumer.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from sqlalchemy import func, select

from services.alerts.delivery.dispatcher import CLAIM_BATCH
from services.alerts.models import Delivery, Task
from services.alerts.rules.engine import alert_id
from services.alerts.tasks.escalation import ESCALATION_RULE, escalation_id
from services.alerts.tasks.service import task_id
from shared.db import create_engine, session_factory
from shared.scores import Risk, Tier
from tests.e2e.stack import migrate, service_env
from tests.support.alerts_messages import enriched_change, facts
from tests.support.alerts_receivers import HttpReceiver
from tests.support.kafka import produce_many
from tests.support.processes import ServiceProcess
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.kafka, pytest.mark.postgres]

ACCOUNTS = 300
CHUNKS = 10
CHUNK_PAUSE_S = 0.3
CHANNEL = "webhook"
STEPS = ("call_sponsor", "manager_review")  # the shipped S save play


def expected_tasks(account_id: str) -> set[str]:
    episode = f"alert:{alert_id(account_id, 'churn_risk_raised', 1)}"
    return {task_id("churn_save_s", step, account_id, episode) for step in STEPS}


async def test_alerts_killed_while_making_tasks_make_and_escalate_each_once(
    kafka: str, database: str, topics: dict[str, str], tmp_path: Path
) -> None:
    receiver = HttpReceiver()
    now = datetime.now(UTC)
    accounts = [f"acct-{n:03d}" for n in range(ACCOUNTS)]
    chunk = ACCOUNTS // CHUNKS
    sent = 0

    async def stream() -> None:
        nonlocal sent
        for index in range(CHUNKS):
            owned = accounts[index * chunk : (index + 1) * chunk]
            changes = [
                enriched_change(
                    account_id=a,
                    tier=Tier.S,
                    risk=Risk.high,
                    previous_risk=Risk.low,
                    computed_at=now,
                    account=facts(last_usage_at=now),
                )
                for a in owned
            ]
            records = [(c.account_id.encode(), c.to_bytes()) for c in changes + changes]
            await produce_many(kafka, topics["scores_topic"], records)
            sent += 1
            await asyncio.sleep(CHUNK_PAUSE_S)

    async with serve(receiver.app()) as url:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{url}/hook")
        env |= {
            "VITALS_ALERTS_TOPIC": f"{topics['scores_topic']}.alerts",
            "VITALS_ALERTS_DISPATCH_INTERVAL_S": "0.2",
            "VITALS_ALERTS_TASK_SERVICE_LEVELS": '{"S": 0, "A": 0, "B": 0, "C": 0}',
            "VITALS_ALERTS_TASK_GRACE": '{"S": 0, "A": 0, "B": 0, "C": 0}',
            "VITALS_ALERTS_BUSINESS_WEEKDAYS": "Mon Tue Wed Thu Fri Sat Sun",
            "VITALS_ALERTS_BUSINESS_DAY_END": "00:00",
            "VITALS_ALERTS_TASK_ESCALATION_INTERVAL_S": "0.2",
        }
        migrate(env)
        service = ServiceProcess("alerts", env, tmp_path)
        service.start()
        try:
            await service.wait_ready()
            streaming = asyncio.create_task(stream())
            at_kill = await wait_for(lambda: _some_escalated(database), 30, "first escalations")
            service.kill(signal.SIGKILL)
            chunks_at_kill = sent
            service.start()
            await service.wait_ready()
            await asyncio.wait_for(streaming, 30)
            await wait_for(lambda: _all_settled(database), 60, "every task escalated and sent")
        finally:
            service.kill()

    tasks, escalated = await _tasks(database)
    wanted = {t for a in accounts for t in expected_tasks(a)}
    assert 0 < at_kill < len(wanted) and chunks_at_kill < CHUNKS
    assert tasks == wanted and escalated == wanted
    hooks = receiver.at("/hook")
    escalations = {
        r.headers["webhook-id"]: orjson.loads(r.body)
        for r in hooks
        if orjson.loads(r.body)["rule"] == ESCALATION_RULE
    }
    assert escalations.keys() == {escalation_id(t, CHANNEL) for t in wanted}
    assert {body["alert_id"] for body in escalations.values()} == wanted
    # Only the round in flight at the kill can be sent again, under the same webhook-id.
    repeats = len([r for r in hooks if orjson.loads(r.body)["rule"] == ESCALATION_RULE])
    assert repeats - len(escalations) <= CLAIM_BATCH


async def _some_escalated(database: str) -> int:
    _, escalated = await _tasks(database)
    return len(escalated) if len(escalated) >= 20 else 0


async def _tasks(database: str) -> tuple[set[str], set[str]]:
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            rows = (await session.execute(select(Task.id, Task.escalated_at))).all()
    finally:
        await engine.dispose()
    return {row[0] for row in rows}, {row[0] for row in rows if row[1] is not None}


async def _all_settled(database: str) -> bool:
    tasks, escalated = await _tasks(database)
    if len(tasks) != 2 * ACCOUNTS or escalated != tasks:
        return False
    engine = create_engine(database)
    try:
        async with session_factory(engine)() as session:
            pending = await session.scalar(
                select(func.count()).where(Delivery.status != "delivered")
            )
    finally:
        await engine.dispose()
    return pending == 0
