"""The alerts service: turns score changes into alerts and delivers them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from fastapi import FastAPI, Query
from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts import repository
from services.alerts.consumer import AlertsHandler, Clock
from services.alerts.dispatcher import Dispatcher
from services.alerts.models import consumer_offsets
from services.alerts.schemas import AlertList, AlertRead, AlertState
from services.alerts.settings import AlertsSettings
from shared.background import running
from shared.consumer import TransactionalConsumer
from shared.db import create_engine, session_factory
from shared.health import Readiness, wait_until_fine
from shared.http import DbSession, create_service_app
from shared.kafka import ensure_topics, make_consumer, start_with_retry, topic_spec
from shared.migrations import MigrationSet, schema_problem

MIGRATIONS = MigrationSet("alerts", Path(__file__).parent / "migrations")


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: AlertsSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    settings = settings or AlertsSettings()
    engine = create_engine(settings.alerts_database_url)
    sessions = session_factory(engine)
    readiness = Readiness("kafka", "consumer")
    readiness.add_probe("database", lambda: schema_problem(engine, MIGRATIONS))
    wake_dispatcher = asyncio.Event()
    dispatcher = Dispatcher(settings, sessions, clock, wake_dispatcher)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # aiokafka clients belong to the running loop, so they are made here.
        consumer = TransactionalConsumer(
            name="alerts",
            topic=settings.scores_topic,
            group_id=settings.alerts_consumer_group,
            make_consumer=lambda: make_consumer(settings, "alerts", settings.alerts_consumer_group),
            sessions=sessions,
            offsets_table=consumer_offsets,
            handler=AlertsHandler(settings, clock, wake_dispatcher),
            readiness=readiness,
            retry_max_s=settings.startup_retry_max_s,
        )
        async with running(_work(settings, engine, readiness, dispatcher, consumer), "alerts"):
            yield
        await dispatcher.close()
        await engine.dispose()

    app = create_service_app(
        title="Vitals alerts",
        description="Alerts raised on account health, and their delivery to CSM channels.",
        lifespan=lifespan,
    )
    app.state.readiness = readiness
    app.state.sessions = sessions
    _add_routes(app)
    return app


async def _work(
    settings: AlertsSettings,
    engine: AsyncEngine,
    readiness: Readiness,
    dispatcher: Dispatcher,
    consumer: TransactionalConsumer,
) -> None:
    """Wait for the schema, then dispatch deliveries and consume until cancelled."""
    retry = settings.startup_retry_max_s
    scores = [topic_spec(settings, settings.scores_topic, compacted=True)]
    await wait_until_fine(
        lambda: schema_problem(engine, MIGRATIONS), readiness.reporter("consumer"), retry
    )
    async with running(dispatcher.run(), "alerts-dispatcher"):
        kafka = readiness.reporter("kafka")
        await start_with_retry("kafka", lambda: ensure_topics(settings, scores), kafka, retry)
        await consumer.run()


def _add_routes(app: FastAPI) -> None:
    @app.get("/v1/alerts", response_model=AlertList, tags=["alerts"], summary="List alerts")
    async def list_alerts(
        session: DbSession,
        state: Annotated[AlertState | None, Query(description="open or resolved")] = None,
        account_id: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> AlertList:
        rows = await repository.list_alerts(
            session, state.value if state else None, account_id, limit
        )
        return AlertList(alerts=[AlertRead.model_validate(row) for row in rows])
