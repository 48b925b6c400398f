"""The ingest service: validates posted events and publishes them to ``vitals.events``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI

from services.ingest.database import DatabaseUnavailable
from services.ingest.dedupe import DatabaseDeduplicator
from services.ingest.http_intake import HttpIntake
from services.ingest.intake import Intake
from services.ingest.openapi import document_request_bodies
from services.ingest.publisher import EventPublisher
from services.ingest.raw_topics import RawTopicsConfig, raw_topic_consumer
from services.ingest.routes import IngestContext
from services.ingest.settings import IngestSettings
from services.ingest.sources.native import api as native_api
from services.ingest.sources.segment import api as segment_api
from services.ingest.sources.segment.store import SegmentDatabase, expire_waiting_every
from services.ingest.sources.stripe import api as stripe_api
from services.ingest.sources.stripe.customers import StripeCustomers
from shared.auth import install_auth
from shared.background import running
from shared.clock import Clock, utc_now
from shared.db import create_engine, session_factory
from shared.dlq import processor_name
from shared.health import Readiness
from shared.http import create_service_app
from shared.migrations import MigrationSet, schema_problem
from shared.openapi import document_security

log = logging.getLogger(__name__)

MIGRATIONS = MigrationSet("ingest", Path(__file__).parent / "migrations")


def create_app(settings: IngestSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    settings = settings or IngestSettings()
    # Every request claims its event ids: no ping per checkout (a dead connection is
    # one 503 the sender retries), and a pool as large as the usual concurrency.
    engine = create_engine(settings.ingest_database_url, pool_size=10, pre_ping=False)
    sessions = session_factory(engine)
    readiness = Readiness("kafka")
    readiness.add_probe("database", lambda: schema_problem(engine, MIGRATIONS))
    publisher = EventPublisher(settings, readiness)
    window = timedelta(seconds=settings.ingest_dedupe_window_s)
    dedupe = DatabaseDeduplicator(sessions, window, settings.dedupe_lease(), clock)
    intake = Intake(publisher, dedupe, processor_name("ingest"), clock)
    segment = SegmentDatabase(timedelta(seconds=settings.ingest_segment_wait_s), clock)
    raw_config = _raw_topics_config(settings)
    raw_topics = raw_topic_consumer(settings, raw_config, intake, segment, clock, readiness)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        publisher.start()
        if raw_config.topics:
            raw_topics.start()
        prune = _prune_every(dedupe, settings.ingest_dedupe_prune_interval_s)
        expire = expire_waiting_every(sessions, intake, segment)
        async with AsyncExitStack() as background:
            await background.enter_async_context(running(prune, "ingest-prune", readiness))
            await background.enter_async_context(
                running(expire, "ingest-segment-waiting", readiness)
            )
            if raw_config.topics:
                lag = raw_topics.lag_probe(settings).run()
                await background.enter_async_context(running(lag, "ingest-raw-lag", readiness))
            yield
        await raw_topics.stop()
        await publisher.stop()
        await engine.dispose()

    app = create_service_app(
        title="Vitals ingest",
        description=(
            "Accepts product-usage, billing and account events. Every rejected record "
            "goes to the dead-letter topic with a machine-readable reason."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.readiness = readiness
    app.state.publisher = publisher
    app.state.sessions = sessions
    install_auth(app, settings.keyring())
    http = HttpIntake(intake, settings.ingest_max_body_bytes, clock)
    customers = StripeCustomers(sessions, clock)
    app.state.ingest = IngestContext(settings, settings.limits(), http, segment, customers)
    for routes in (native_api.router, segment_api.router, stripe_api.router):
        app.include_router(routes)
    keyed = frozenset(native_api.BODIES | segment_api.BODIES)  # Stripe signs instead
    document_request_bodies(app, native_api.BODIES | segment_api.BODIES | stripe_api.BODIES, keyed)
    document_security(app)
    return app


def _raw_topics_config(settings: IngestSettings) -> RawTopicsConfig:
    return RawTopicsConfig(
        topics=settings.ingest_raw_topics,
        group_id=settings.ingest_raw_consumer_group,
        max_rejected_ratio=settings.ingest_raw_max_rejected_ratio,
        rejected_window=settings.ingest_raw_rejected_window,
    )


async def _prune_every(dedupe: DatabaseDeduplicator, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        try:
            deleted = await dedupe.prune()
        except DatabaseUnavailable as exc:
            log.warning("expired event ids not pruned: %s", exc)
        else:
            log.info("pruned %d expired event ids", deleted)
