"""Ingest apps for tests: own topics (events, dead letters, raw), a given database."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.ingest.app import MIGRATIONS, create_app
from services.ingest.settings import IngestSettings
from shared.db import create_engine
from shared.migrations import upgrade_to_head
from tests.support.apps import FAST_RETRY
from tests.support.servers import serve, wait_for


def ingest_topics(topics: dict[str, str]) -> dict[str, str]:
    events = topics["events_topic"]
    return {"events_topic": events, "dlq_topic": f"{events}.dlq"}


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
    engine = create_engine(database)
    try:
        await upgrade_to_head(engine, MIGRATIONS)
    finally:
        await engine.dispose()
    return database


async def is_ready(client: httpx.AsyncClient) -> bool:
    return (await client.get("/readyz")).status_code == 200


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
