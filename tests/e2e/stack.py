"""The three services as separate processes, started the way an operator would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.processes import ServiceProcess
from tests.support.servers import WebhookReceiver, serve

# Unpaid for more than the shipped scorecard's grace of seven days: high risk, so an
# alert is opened and delivered.
UNPAID_PAST_GRACE = {
    "account_id": "acme",
    "kind": "billing",
    "name": "invoice.payment_failed",
    "occurred_at": "2026-11-10T10:00:00Z",
    "billing": {"payment": "failed", "subscription_status": "past_due", "seats": 20},
}


def service_env(
    *, kafka: str, database: str, topics: dict[str, str], webhook_url: str
) -> dict[str, str]:
    settings = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "INGEST_DATABASE_URL": database,
        "SCORING_DATABASE_URL": database,
        "ALERTS_DATABASE_URL": database,
        "ALERTS_WEBHOOK_URL": webhook_url,
        "STARTUP_RETRY_MAX_S": "1",
        "TOPIC_PARTITIONS": "3",
        "ENVIRONMENT": "test",
        "INGEST_RAW_TOPICS": f"{topics['events_topic']}.usage.raw",
        "INGEST_RAW_CONSUMER_GROUP": f"{topics['events_topic']}-raw",
        **{name.upper(): value for name, value in topics.items()},
    }
    return {**os.environ, **{f"VITALS_{k}": v for k, v in settings.items()}}


def migrate(env: dict[str, str]) -> None:
    subprocess.run(
        [sys.executable, "-m", "services", "migrate"], env=env, check=True, capture_output=True
    )


@asynccontextmanager
async def migrated_env(
    kafka: str, database: str, topics: dict[str, str]
) -> AsyncIterator[dict[str, str]]:
    """The services' environment over ``database``, migrated, with alerts delivering to
    a local webhook receiver while the block runs."""
    async with serve(WebhookReceiver().app()) as hook:
        env = service_env(kafka=kafka, database=database, topics=topics, webhook_url=f"{hook}/h")
        migrate(env)
        yield env


def console_services(
    env: dict[str, str], log_dir: Path
) -> tuple[ServiceProcess, ServiceProcess, ServiceProcess]:
    """Scoring, alerts and the console that reads them, as processes not yet started."""
    scoring, alerts = (ServiceProcess(name, env, log_dir) for name in ("scoring", "alerts"))
    urls = {"VITALS_CONSOLE_SCORING_URL": scoring.url, "VITALS_CONSOLE_ALERTS_URL": alerts.url}
    return scoring, alerts, ServiceProcess("console", {**env, **urls}, log_dir)


@asynccontextmanager
async def running(services: Sequence[ServiceProcess]) -> AsyncIterator[None]:
    """``services`` started and ready for the block, killed after it."""
    for service in services:
        service.start()
    try:
        for service in services:
            await service.wait_ready()
        yield
    finally:
        for service in services:
            service.kill()
