"""The alerts service: turns score changes into alerts and delivers them."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.alerts import api
from services.alerts.configuration import FileConfig, SetupCache, load_files, sync_file_channels
from services.alerts.consumer import AlertsHandler
from services.alerts.delivery.dispatcher import Dispatcher
from services.alerts.delivery.senders import Senders
from services.alerts.models import consumer_offsets
from services.alerts.publisher import AlertsPublisher
from services.alerts.settings import AlertsSettings
from services.alerts.tasks import api as tasks_api
from shared.background import running
from shared.clock import Clock, utc_now
from shared.commit import DatabaseOffsets
from shared.consumer import Consumer
from shared.db import SessionFactory, create_engine, session_factory
from shared.health import Readiness, wait_until_fine
from shared.http import create_service_app
from shared.kafka import ensure_topics, make_consumer, start_with_retry, topic_spec
from shared.migrations import MigrationSet, schema_problem
from shared.openapi import ADMIN_TOKEN, document_security

MIGRATIONS = MigrationSet("alerts", Path(__file__).parent / "migrations")
log = logging.getLogger(__name__)


def create_app(settings: AlertsSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    """The app; raises ConfigError, naming the field, when a rules or channels file is bad."""
    settings = settings or AlertsSettings()
    files = load_files(settings)
    setup_cache = SetupCache(files)
    engine = create_engine(settings.alerts_database_url)
    sessions = session_factory(engine)
    consumes = settings.alerts_role in ("all", "consume")
    readiness = Readiness("kafka", "consumer") if consumes else Readiness("dispatcher")
    readiness.add_probe("database", lambda: schema_problem(engine, MIGRATIONS))
    wake_dispatcher = asyncio.Event()
    dispatcher = Dispatcher(settings, setup_cache, sessions, clock, wake_dispatcher)
    publisher = AlertsPublisher(settings, sessions, clock, readiness)
    senders = Senders(files.policy, settings.alerts_delivery_timeout_s)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # aiokafka clients belong to the running loop, so they are made here.
        consumer = Consumer(
            name="alerts",
            topics=[settings.scores_topic],
            group_id=settings.alerts_consumer_group,
            make_consumer=lambda: make_consumer(settings, "alerts", settings.alerts_consumer_group),
            commit=DatabaseOffsets(sessions, consumer_offsets, settings.alerts_consumer_group),
            handler=AlertsHandler(settings, setup_cache, clock, wake_dispatcher, publisher.poke),
            readiness=readiness,
            retry_max_s=settings.startup_retry_max_s,
        )
        work = _work(
            settings, files, engine, sessions, readiness, dispatcher, publisher, consumer, clock
        )
        async with running(work, "alerts", readiness):
            yield
        await dispatcher.close()
        await senders.close()
        await engine.dispose()

    app = create_service_app(
        title="Vitals alerts",
        description="Alerts raised on account health, and their delivery to CSM channels.",
        lifespan=lifespan,
    )
    app.state.readiness = readiness
    app.state.sessions = sessions
    app.state.runtime = api.Runtime(settings, setup_cache, senders, clock)
    api.install(app, settings.keyring())
    document_security(app, {api.require_admin: ADMIN_TOKEN})
    tasks_api.install(app, settings)
    return app


async def _work(
    settings: AlertsSettings,
    files: FileConfig,
    engine: AsyncEngine,
    sessions: SessionFactory,
    readiness: Readiness,
    dispatcher: Dispatcher,
    publisher: AlertsPublisher,
    consumer: Consumer[AsyncSession],
    clock: Clock,
) -> None:
    """Wait for the schema, store the file channels, then dispatch, publish and consume
    (as far as ``VITALS_ALERTS_ROLE`` asks)."""
    retry = settings.startup_retry_max_s
    role = settings.alerts_role
    first_check = "dispatcher" if role == "dispatch" else "consumer"
    await wait_until_fine(
        lambda: schema_problem(engine, MIGRATIONS), readiness.reporter(first_check), retry
    )
    await _store_file_channels(sessions, files, clock)
    if role == "dispatch":
        readiness.report("dispatcher", None)
        await dispatcher.run()
        return
    if role == "consume":
        await _consume(settings, readiness, publisher, consumer)
        return
    async with running(dispatcher.run(), "alerts-dispatcher", readiness):
        await _consume(settings, readiness, publisher, consumer)


async def _consume(
    settings: AlertsSettings,
    readiness: Readiness,
    publisher: AlertsPublisher,
    consumer: Consumer[AsyncSession],
) -> None:
    topics = [
        topic_spec(settings, settings.scores_topic, compacted=True),
        topic_spec(settings, settings.alerts_topic),
        topic_spec(settings, settings.dlq_topic),
    ]
    kafka = readiness.reporter("kafka")
    retry = settings.startup_retry_max_s
    await start_with_retry("kafka", lambda: ensure_topics(settings, topics), kafka, retry)
    async with (
        running(publisher.run(), "alerts-publisher", readiness),
        running(consumer.lag_probe(settings).run(), "alerts-lag", readiness),
    ):
        await consumer.run()


async def _store_file_channels(sessions: SessionFactory, files: FileConfig, clock: Clock) -> None:
    for attempt in range(3):
        try:
            async with sessions() as session, session.begin():
                await sync_file_channels(session, files, clock())
            return
        except IntegrityError:  # another replica stored them at the same moment
            log.info("file channels stored concurrently, retrying (%d)", attempt + 1)
