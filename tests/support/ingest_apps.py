"""Ingest apps for tests: own topics (events, dead letters, raw), a given database;
and Stripe webhook events as Stripe sends them, signed by Stripe's own library."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from stripe import WebhookSignature

from services.ingest.app import MIGRATIONS, create_app
from services.ingest.settings import IngestSettings
from tests.support.apps import FAST_RETRY
from tests.support.infra import migrated_to
from tests.support.servers import is_ready, serve, wait_for


def ingest_topics(topics: dict[str, str]) -> dict[str, str]:
    events = topics["events_topic"]
    return {
        "events_topic": events,
        "dlq_topic": f"{events}.dlq",
        # Each test app its own raw topics and group, so apps never read each other's.
        "ingest_raw_topics": f"{events}.usage.raw,{events}.billing.raw",
        "ingest_raw_consumer_group": f"{events}-raw",
    }


def ingest_test_settings(
    *, kafka: str, topics: dict[str, str], database: str, **overrides: Any
) -> IngestSettings:
    return IngestSettings(
        kafka_bootstrap_servers=kafka,
        ingest_database_url=database,
        **{**FAST_RETRY, **ingest_topics(topics), **overrides},
    )


async def migrated(database: str) -> str:
    """``database`` brought to the ingest schema's head; returns its URL."""
    return await migrated_to(database, MIGRATIONS)


@asynccontextmanager
async def ingest_client(
    settings: IngestSettings, **app_args: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """A running ingest app, ready, and a client for it."""
    async with (
        serve(create_app(settings, **app_args)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        await wait_for(lambda: is_ready(client), 30, "ingest to be ready")
        yield client


async def topic_size(kafka: str, topic: str) -> int:
    """Records ever written to ``topic`` (its partitions' end offsets): exact once every
    producer was acknowledged, unlike waiting to see that nothing more comes."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    partitions = [TopicPartition(topic, p["partition"]) for p in described[0]["partitions"]]
    assert partitions, f"topic {topic} does not exist"
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka)
    await consumer.start()
    try:
        return sum((await consumer.end_offsets(partitions)).values())
    finally:
        await consumer.stop()


# Stripe webhook events
CREATED = 1_795_000_000  # 2026-11-18
PERIOD_END = 1_797_600_000  # 2026-12-18


def stripe_event(
    event_type: str, obj: dict[str, Any], *, event_id: str = "evt_1", created: int = CREATED
) -> bytes:
    return orjson.dumps(
        {
            "id": event_id,
            "object": "event",
            "api_version": "2024-06-20",
            "created": created,
            "livemode": False,
            "pending_webhooks": 1,
            "type": event_type,
            "data": {"object": obj},
        }
    )


def price(
    *,
    unit_amount: int | None = 5_000,
    interval: str = "month",
    interval_count: int = 1,
    usage_type: str = "licensed",
    nickname: str | None = "Growth",
    currency: str = "usd",
) -> dict[str, Any]:
    return {
        "id": "price_1",
        "object": "price",
        "currency": currency,
        "nickname": nickname,
        "product": "prod_1",
        "unit_amount": unit_amount,
        "recurring": {
            "interval": interval,
            "interval_count": interval_count,
            "usage_type": usage_type,
        },
    }


def subscription(
    *,
    customer: str | dict[str, Any] = "cus_1",
    status: str = "active",
    items: list[tuple[dict[str, Any], int]] | None = None,
    metadata: dict[str, str] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    chosen = items if items is not None else [(price(), 12)]
    return {
        "id": "sub_1",
        "object": "subscription",
        "customer": customer,
        "status": status,
        "currency": "usd",
        "start_date": 1_790_000_000,
        "current_period_end": PERIOD_END,
        "cancel_at_period_end": False,
        "metadata": metadata or {},
        "items": {
            "object": "list",
            "data": [
                {"id": f"si_{n}", "object": "subscription_item", "price": p, "quantity": q}
                for n, (p, q) in enumerate(chosen)
            ],
        },
        **fields,
    }


def invoice(*, customer: str = "cus_1", **fields: Any) -> dict[str, Any]:
    return {
        "id": "in_1",
        "object": "invoice",
        "customer": customer,
        "currency": "eur",
        "amount_due": 12_000,
        "amount_paid": 0,
        "due_date": None,
        "created": CREATED,
        "status_transitions": {"finalized_at": CREATED},
        "subscription": "sub_1",
        "metadata": {},
        **fields,
    }


def signature_header(body: bytes, secret: str, timestamp: int | None = None) -> str:
    """``Stripe-Signature`` as Stripe computes it (its library's own test helper)."""
    stamp = int(time.time()) if timestamp is None else timestamp
    header: str = WebhookSignature.generate_signature_header(body.decode(), secret, stamp)
    return header
