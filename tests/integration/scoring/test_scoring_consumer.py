from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select

from services.scoring.app import MIGRATIONS, create_app
from services.scoring.domain import AccountState, Assessment, Limits, apply_events, rescore
from services.scoring.models import Account, ScoreHistory, consumer_offsets
from shared.db import SessionFactory, create_engine, session_factory
from shared.events import Event, SubscriptionStatus
from shared.migrations import upgrade_to_head
from shared.scores import ScoreChange, Trigger
from tests.support.apps import scoring_settings
from tests.support.clock import FakeClock
from tests.support.events import billing_event, usage_event
from tests.support.infra import create_database, drop_database, new_database_url
from tests.support.kafka import consume, produce
from tests.support.processes import metric_value
from tests.support.scoring_builders import v1_card
from tests.support.servers import is_ready, serve, wait_for

pytestmark = [pytest.mark.kafka]


async def _migrate(url: str) -> None:
    engine = create_engine(url)
    await upgrade_to_head(engine, MIGRATIONS)
    await engine.dispose()


@pytest.fixture(params=["postgresql", "sqlite"])
async def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A migrated database: PostgreSQL as in production, SQLite as in `make run`."""
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/scoring.db"
        await _migrate(url)
        yield url
        return
    admin = request.getfixturevalue("postgres_admin")
    url = await create_database(admin)
    await _migrate(url)
    yield url
    await drop_database(admin, url)


def _scored_by_the_core(events: list[Event], as_of: datetime) -> Assessment:
    state = AccountState(account_id=events[0].account_id)
    apply_events(state, events, Limits())
    result = rescore(state, as_of, v1_card())
    assert result.assessment is not None
    return result.assessment


def _records(events: list[Event]) -> list[tuple[bytes, bytes]]:
    return [(e.account_id.encode(), e.to_bytes()) for e in events]


async def _account(client: httpx.AsyncClient, account_id: str) -> dict[str, object] | None:
    response = await client.get(f"/v1/accounts/{account_id}")
    return response.json() if response.status_code == 200 else None


def _applied(client: httpx.AsyncClient, account_id: str, count: int):  # type: ignore[no-untyped-def]
    async def check() -> dict[str, object] | None:
        account = await _account(client, account_id)
        return account if account and account["events_applied"] == count else None

    return check


async def test_events_become_a_score_history_offsets_and_a_score_message(
    kafka: str, migrated: str, topics: dict[str, str]
) -> None:
    clock = FakeClock()
    settings = scoring_settings(kafka=kafka, database=migrated, topics=topics)
    events = [
        billing_event(account_id="acme", seats=2, occurred_at=clock.now),
        usage_event(account_id="acme", user_id="u1", occurred_at=clock.now),
        usage_event(account_id="gone", occurred_at=clock.now - timedelta(days=20)),
    ]
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], _records(events))
        acme = await wait_for(_applied(api, "acme", 2), 30, "acme's events to be applied")
        gone = await wait_for(_applied(api, "gone", 1), 30, "gone's event to be applied")
        missing = await api.get("/v1/accounts/nobody")
        # The relay marks a change published once the broker acked it: wait for that
        # while the service runs (one stopped between ack and mark sends it again).
        sessions = session_factory(engine := create_engine(migrated))
        await wait_for(
            lambda: _nothing_unpublished(sessions), 30, "every score change to be published"
        )
        async with sessions() as session:
            stored = sum((await session.scalars(select(consumer_offsets.c.next_offset))).all())
        await engine.dispose()

    expected_acme = _scored_by_the_core(events[:2], clock.now)
    expected_gone = _scored_by_the_core(events[2:], clock.now)
    assert acme["components"] == expected_acme.components
    assert (acme["health_score"], acme["band"]) == (expected_acme.health_score, "green")
    assert acme["components"]["engagement"] == 63  # 1 active user / 2 seats, full at 0.8
    assert (gone["health_score"], gone["band"]) == (expected_gone.health_score, "red")
    assert gone["risk"] == "high" and "no usage for 14 days" in gone["risk_reasons"]
    assert missing.status_code == 404
    records = await consume(kafka, topics["scores_topic"], 2)
    messages = [ScoreChange.from_bytes(r.value) for r in records]
    published = {(m.account_id, m.sequence, m.health_score) for m in messages}
    assert published >= {("gone", 1, expected_gone.health_score)}
    # The first sweep (at assignment) may re-score with the portfolio it just read.
    assert all(m.scorecard == "default@1" for m in messages)
    assert all(m.trigger in (Trigger.events, Trigger.sweep) for m in messages)
    for m in messages:
        assert sum(d.points for d in m.drivers) == pytest.approx(
            m.health_score - (m.previous_score or 0)
        )
    assert stored == len(events)


async def _nothing_unpublished(sessions: SessionFactory) -> bool:
    async with sessions() as session:
        count = await session.scalar(
            select(func.count()).where(ScoreHistory.published_at.is_(None))
        )
    return count == 0


async def test_the_database_not_kafka_says_where_to_resume(
    kafka: str, migrated: str, topics: dict[str, str]
) -> None:
    settings = scoring_settings(kafka=kafka, database=migrated, topics=topics)
    first = [usage_event(account_id="acme", user_id=f"u{i}") for i in range(5)]
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], _records(first))
        await wait_for(_applied(api, "acme", 5), 30, "the first events")

    await _rewind_kafka_commits(
        kafka, topics["events_topic"], topics["scoring_consumer_group"], settings.topic_partitions
    )
    second = [usage_event(account_id="acme", user_id="late")]
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], _records(second))
        account = await wait_for(_applied(api, "acme", 6), 30, "the late event")
        await produce(kafka, topics["events_topic"], _records([usage_event(account_id="probe")]))
        await wait_for(_applied(api, "probe", 1), 30, "a probe event after the replay window")
        after = await _account(api, "acme")

    assert account["events_applied"] == 6
    assert after is not None and after["events_applied"] == 6


async def _rewind_kafka_commits(kafka: str, topic: str, group: str, partitions_count: int) -> None:
    """Point the group's Kafka commits back to 0: the service must ignore them."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partitions_count)]
        consumer.assign(partitions)
        await consumer.commit({tp: 0 for tp in partitions})
    finally:
        await consumer.stop()


@pytest.mark.postgres
async def test_it_waits_for_its_database_and_recovers_by_itself(
    kafka: str, postgres_admin: str, topics: dict[str, str]
) -> None:
    url = new_database_url(postgres_admin)
    settings = scoring_settings(kafka=kafka, database=url, topics=topics)
    async with serve(create_app(settings)) as base, httpx.AsyncClient(base_url=base) as api:
        waiting = (await api.get("/readyz")).json()
        await create_database(postgres_admin, url)
        await _migrate(url)
        await produce(
            kafka,
            topics["events_topic"],
            _records([billing_event(account_id="acme", status=SubscriptionStatus.canceled)]),
        )
        account = await wait_for(_applied(api, "acme", 1), 60, "scoring to recover")
        ready = await wait_for(lambda: is_ready(api), 30, "readiness")
    await drop_database(postgres_admin, url)

    assert waiting["ready"] is False
    assert waiting["checks"]["database"].startswith("unreachable")
    assert account["health_score"] == 0
    assert ready


@pytest.mark.postgres
async def test_two_replicas_split_the_partitions_and_a_handover_counts_each_event_once(
    kafka: str, database: str, topics: dict[str, str]
) -> None:
    await _migrate(database)
    settings = scoring_settings(kafka=kafka, database=database, topics=topics)
    accounts = [f"acct-{n}" for n in range(12)]
    first = [usage_event(account_id=a, user_id=f"u{i}") for a in accounts for i in range(5)]
    second = [usage_event(account_id=a, user_id="later") for a in accounts]
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        async with serve(create_app(settings)) as other_url:
            async with httpx.AsyncClient(base_url=other_url) as other:
                # ready once its first assignment is done: the group has rebalanced
                await wait_for(lambda: is_ready(other), 60, "the second replica to join")
            await produce(kafka, topics["events_topic"], _records(first))
            for account in accounts:
                await wait_for(_applied(api, account, 5), 30, f"{account}'s first events")
        await produce(kafka, topics["events_topic"], _records(second))
        for account in accounts:
            await wait_for(_applied(api, account, 6), 60, f"{account}'s event after the handover")


async def test_states_evicted_from_memory_are_read_back_and_count_every_event_once(
    kafka: str, migrated: str, topics: dict[str, str]
) -> None:
    """With room for one state, every batch but a lone account's reads states back from
    the database; events in several rounds must each be counted once, and the account
    rows must carry the partition, the score and the MRR of what was applied."""
    clock = FakeClock()
    settings = scoring_settings(
        kafka=kafka,
        database=migrated,
        topics=topics,
        scoring_state_cache_accounts=1,
        scoring_batch_max_records=7,
    )
    accounts = [f"acct-{n}" for n in range(5)]
    rounds = 3
    async with serve(create_app(settings, clock)) as url, httpx.AsyncClient(base_url=url) as api:
        loaded_before = metric_value((await api.get("/metrics")).text, LOADED)
        for round_number in range(rounds):
            events = [
                billing_event(
                    account_id=a, seats=2, mrr_minor=1000 * (n + 1), occurred_at=clock.now
                )
                if round_number == 0
                else usage_event(account_id=a, user_id=f"u{round_number}", occurred_at=clock.now)
                for n, a in enumerate(accounts)
            ]
            await produce(kafka, topics["events_topic"], _records(events))
            for account_id in accounts:
                await wait_for(_applied(api, account_id, round_number + 1), 30, account_id)
        listed = (await api.get("/v1/accounts", params={"sort": "mrr"})).json()["accounts"]
        metrics = (await api.get("/metrics")).text

    assert [a["account_id"] for a in listed] == accounts  # by MRR, from the row columns
    assert all(a["health_score"] is not None for a in listed)
    assert metric_value(metrics, "vitals_scoring_states_cached") == 1
    # Each round but the first reads back at least every account but the one kept.
    loaded = metric_value(metrics, LOADED) - loaded_before
    assert loaded >= (rounds - 1) * (len(accounts) - 1)
    engine = create_engine(migrated)
    async with session_factory(engine)() as session:
        partitions = (await session.scalars(select(Account.partition))).all()
    await engine.dispose()
    assert len(partitions) == len(accounts) and None not in partitions


LOADED = "vitals_scoring_states_loaded_total"
