"""The scoring service: consumes events, keeps account state, publishes score changes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

from aiokafka import AIOKafkaProducer
from fastapi import FastAPI
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import repository
from services.scoring.consumer import Clock, ScoringHandler
from services.scoring.domain import AccountState
from services.scoring.models import consumer_offsets
from services.scoring.schemas import AccountRead
from services.scoring.settings import ScoringSettings
from shared.background import running
from shared.consumer import TransactionalConsumer
from shared.db import create_engine, session_factory
from shared.health import Readiness, wait_until_fine
from shared.http import DbSession, Problem, create_service_app, problem_response
from shared.kafka import ensure_topics, make_consumer, make_producer, start_with_retry, topic_spec
from shared.migrations import MigrationSet, schema_problem

MIGRATIONS = MigrationSet("scoring", Path(__file__).parent / "migrations")


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(settings: ScoringSettings | None = None, clock: Clock = utc_now) -> FastAPI:
    settings = settings or ScoringSettings()
    engine = create_engine(settings.scoring_database_url)
    sessions = session_factory(engine)
    readiness = Readiness("kafka", "consumer")
    readiness.add_probe("database", lambda: schema_problem(engine, MIGRATIONS))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # aiokafka clients belong to the running loop, so they are made here.
        producer = make_producer(settings, "scoring")
        consumer = TransactionalConsumer(
            name="scoring",
            topic=settings.events_topic,
            group_id=settings.scoring_consumer_group,
            make_consumer=lambda: make_consumer(
                settings, "scoring", settings.scoring_consumer_group
            ),
            sessions=sessions,
            offsets_table=consumer_offsets,
            handler=ScoringHandler(settings, sessions, producer, clock),
            readiness=readiness,
            max_records=settings.scoring_batch_max_records,
            retry_max_s=settings.startup_retry_max_s,
        )
        async with running(_work(settings, engine, readiness, producer, consumer), "scoring"):
            yield
        await producer.stop()
        await engine.dispose()

    app = create_service_app(
        title="Vitals scoring",
        description="Health score, band and components of every customer account.",
        lifespan=lifespan,
    )
    app.state.readiness = readiness
    app.state.sessions = sessions
    _add_routes(app)
    return app


async def _work(
    settings: ScoringSettings,
    engine: AsyncEngine,
    readiness: Readiness,
    producer: AIOKafkaProducer,
    consumer: TransactionalConsumer,
) -> None:
    """Wait for the schema, create the topics, connect, then consume until cancelled."""
    retry = settings.startup_retry_max_s
    kafka = readiness.reporter("kafka")
    topics = [
        topic_spec(settings, settings.events_topic),
        topic_spec(settings, settings.scores_topic, compacted=True),
    ]
    await wait_until_fine(
        lambda: schema_problem(engine, MIGRATIONS), readiness.reporter("consumer"), retry
    )
    await start_with_retry("kafka", lambda: ensure_topics(settings, topics), kafka, retry)
    await start_with_retry("kafka", producer.start, kafka, retry)
    await consumer.run()


AccountId = Annotated[str, PathParam(min_length=1, max_length=200)]


def _add_routes(app: FastAPI) -> None:
    @app.get(
        "/v1/accounts/{account_id}",
        response_model=AccountRead,
        responses={404: {"model": Problem, "description": "No events seen for this account"}},
        tags=["accounts"],
        summary="Current score of one account",
    )
    async def get_account(account_id: AccountId, session: DbSession) -> AccountRead | JSONResponse:
        row = await repository.get_account(session, account_id)
        if row is None:
            return problem_response(404, "not_found", f"no events seen for account {account_id!r}")
        state = AccountState.model_validate(row.state)
        return AccountRead(
            account_id=row.account_id,
            health_score=row.health_score,
            band=state.score.band if state.score else None,
            components=state.score.components if state.score else {},
            sequence=row.sequence,
            events_applied=state.events_applied,
            name=state.name,
            owner_csm_email=state.owner_csm_email,
            segment=state.segment,
            seats=state.seats,
            mrr_minor=state.mrr_minor,
            currency=state.currency,
            subscription_status=state.subscription_status,
            last_usage_at=state.last_usage_at,
            updated_at=row.updated_at,
        )
