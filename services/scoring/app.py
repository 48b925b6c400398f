"""The scoring service: consumes events, keeps account state, publishes score changes."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.scoring.api import ScoringContext, router
from services.scoring.consumer import AccountScorer, ScoringHandler
from services.scoring.models import consumer_offsets
from services.scoring.retention.api import router as retention_router
from services.scoring.retention.cache import RecentMovements
from services.scoring.retention.currency import RatesFile
from services.scoring.schemas import PortfolioRead
from services.scoring.scorecard import load_scorecards
from services.scoring.settings import ScoringSettings
from services.scoring.sweep import Sweep
from shared.auth import install_auth
from shared.background import running
from shared.clock import Clock, utc_now
from shared.commit import DatabaseOffsets
from shared.consumer import Consumer
from shared.db import create_engine, session_factory
from shared.health import Readiness, wait_until_fine
from shared.http import create_service_app
from shared.kafka import ensure_topics, make_consumer, make_producer, start_with_retry, topic_spec
from shared.migrations import MigrationSet, schema_problem
from shared.openapi import document_security
from shared.recent import Recent

MIGRATIONS = MigrationSet("scoring", Path(__file__).parent / "migrations")
# Collect garbage less often than Python's default (700, 10, 10). The states kept in
# memory are millions of objects that every full collection walks; with the default,
# collections took about a quarter of a catch-up's time (3,100 against 2,400 events/s).
GC_THRESHOLDS = (100_000, 20, 100)


def settings_clock(settings: ScoringSettings) -> Clock:
    """The wall clock, or the fixed one a test run asked for."""
    fixed = settings.scoring_fixed_clock
    if fixed is None:
        return utc_now
    return lambda: fixed


def create_app(settings: ScoringSettings | None = None, clock: Clock | None = None) -> FastAPI:
    """The app; raises ScorecardError (naming file and field) for an unusable scorecard."""
    settings = settings or ScoringSettings()
    clock = clock or settings_clock(settings)
    scorecards = load_scorecards(settings.scoring_scorecards_path)
    engine = create_engine(settings.scoring_database_url)
    sessions = session_factory(engine)
    readiness = Readiness("kafka", "consumer")
    readiness.add_probe("database", lambda: schema_problem(engine, MIGRATIONS))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        gc.set_threshold(*GC_THRESHOLDS)
        # aiokafka clients belong to the running loop, so they are made here.
        producer = make_producer(settings, "scoring")
        scorer = AccountScorer(settings, scorecards, clock)
        handler = ScoringHandler(settings, sessions, producer, scorer, clock, readiness)
        consumer = Consumer(
            name="scoring",
            topics=[settings.events_topic],
            group_id=settings.scoring_consumer_group,
            make_consumer=lambda: make_consumer(
                settings,
                "scoring",
                settings.scoring_consumer_group,
                **settings.kafka_membership(),
            ),
            commit=DatabaseOffsets(sessions, consumer_offsets, settings.scoring_consumer_group),
            handler=handler,
            readiness=readiness,
            max_records=settings.scoring_batch_max_records,
            retry_max_s=settings.startup_retry_max_s,
            periodic=Sweep(settings, scorer, handler, clock),
        )
        work = _work(settings, engine, readiness, producer, consumer)
        async with running(work, "scoring", readiness):
            yield
        await producer.stop()
        await engine.dispose()

    app = create_service_app(
        title="Vitals scoring",
        description=(
            "Health score, band, drivers, churn risk, value tier and lifecycle stage "
            "of every customer account."
        ),
        lifespan=lifespan,
    )
    install_auth(app, settings.keyring())
    app.state.readiness = readiness
    app.state.sessions = sessions
    portfolio = Recent[PortfolioRead](settings.scoring_portfolio_max_age_s)
    app.state.scoring = ScoringContext(scorecards, clock, portfolio)
    app.include_router(router)
    app.state.rates = RatesFile(settings.scoring_currency_rates_path, settings.home_currency)
    app.state.retention = RecentMovements(settings.scoring_retention_max_age_s)
    app.include_router(retention_router)
    document_security(app)
    return app


async def _work(
    settings: ScoringSettings,
    engine: AsyncEngine,
    readiness: Readiness,
    producer: AIOKafkaProducer,
    consumer: Consumer[AsyncSession],
) -> None:
    """Wait for the schema, create the topics, connect, then consume until cancelled."""
    retry = settings.startup_retry_max_s
    kafka = readiness.reporter("kafka")
    topics = [
        topic_spec(settings, settings.events_topic),
        topic_spec(settings, settings.scores_topic, compacted=True),
        topic_spec(settings, settings.dlq_topic),
    ]
    await wait_until_fine(
        lambda: schema_problem(engine, MIGRATIONS), readiness.reporter("consumer"), retry
    )
    await start_with_retry("kafka", lambda: ensure_topics(settings, topics), kafka, retry)
    await start_with_retry("kafka", producer.start, kafka, retry)
    async with running(consumer.lag_probe(settings).run(), "scoring-lag", readiness):
        await consumer.run()
