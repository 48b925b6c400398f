"""Deduplication by event_id on a real database: PostgreSQL, and SQLite for `make run`."""

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.ingest.dedupe import DatabaseDeduplicator, InFlight
from services.ingest.models import seen_events
from shared.db import create_engine, session_factory
from shared.events import Event
from tests.support.clock import FakeClock
from tests.support.events import native_usage_json
from tests.support.infra import create_database, drop_database
from tests.support.ingest_apps import ingest_client, ingest_test_settings, migrated
from tests.support.kafka import consume

pytestmark = pytest.mark.postgres

WINDOW = timedelta(hours=24)
LEASE = timedelta(seconds=35)


@pytest.fixture(params=["postgres", "sqlite"])
async def store_url(
    request: pytest.FixtureRequest, tmp_path: Path, postgres_admin: str
) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield await migrated(f"sqlite+aiosqlite:///{tmp_path}/ingest.db")
        return
    url = await create_database(postgres_admin)
    yield await migrated(url)
    await drop_database(postgres_admin, url)


@pytest.fixture
async def dedupe(store_url: str) -> AsyncIterator[tuple[DatabaseDeduplicator, FakeClock]]:
    engine = create_engine(store_url)
    clock = FakeClock()
    yield DatabaseDeduplicator(session_factory(engine), WINDOW, LEASE, clock), clock
    await engine.dispose()


async def test_a_published_id_is_a_repeat_until_its_window_ends(
    dedupe: tuple[DatabaseDeduplicator, FakeClock],
) -> None:
    store, clock = dedupe
    first = await store.claim(["a", "b"])
    await store.confirm(first.new)

    clock.advance(WINDOW - timedelta(seconds=1))
    within = await store.claim(["a", "c"])
    clock.advance(timedelta(seconds=2))
    after = await store.claim(["b"])

    assert first.new == {"a", "b"}
    assert within.new == {"c"}
    assert after.new == {"b"}


async def test_a_released_claim_is_new_again(
    dedupe: tuple[DatabaseDeduplicator, FakeClock],
) -> None:
    store, _ = dedupe
    claim = await store.claim(["a"])
    await store.release(claim.new)

    assert (await store.claim(["a"])).new == {"a"}


async def test_an_id_being_published_elsewhere_is_in_flight_and_nothing_stays_claimed(
    dedupe: tuple[DatabaseDeduplicator, FakeClock],
) -> None:
    store, clock = dedupe
    await store.claim(["busy"])

    with pytest.raises(InFlight):
        await store.claim(["fresh", "busy"])
    clock.advance(LEASE + timedelta(seconds=1))
    taken_over = await store.claim(["fresh", "busy"])

    assert taken_over.new == {"fresh", "busy"}


async def test_pruning_deletes_only_expired_ids(
    dedupe: tuple[DatabaseDeduplicator, FakeClock], store_url: str
) -> None:
    store, clock = dedupe
    await store.confirm((await store.claim(["old-1", "old-2", "old-3"])).new)
    clock.advance(WINDOW + timedelta(seconds=1))
    await store.confirm((await store.claim(["new"])).new)

    deleted = await store.prune(batch=2)

    assert deleted == 3
    engine = create_engine(store_url)
    try:
        async with engine.connect() as connection:
            left = await connection.scalar(select(func.count()).select_from(seen_events))
    finally:
        await engine.dispose()
    assert left == 1


@pytest.mark.kafka
async def test_a_repeat_is_dropped_across_a_restart_and_across_replicas(
    kafka: str, topics: dict[str, str], database: str
) -> None:
    settings = ingest_test_settings(kafka=kafka, topics=topics, database=await migrated(database))
    event = native_usage_json(event_id="once")

    async with ingest_client(settings) as first:
        accepted = await first.post("/v1/events", json=event)
    async with ingest_client(settings) as restarted, ingest_client(settings) as replica:
        again = await restarted.post("/v1/events", json={"events": [event, event]})
        elsewhere = await replica.post("/v1/events", json=event)
        marker = await replica.post("/v1/events", json=native_usage_json(event_id="marker"))

    assert accepted.json()["accepted"] == 1
    assert again.status_code == 202
    assert (again.json()["accepted"], again.json()["duplicates"]) == (0, 2)
    assert (elsewhere.json()["accepted"], elsewhere.json()["duplicates"]) == (0, 1)
    assert marker.json()["accepted"] == 1
    records = await consume(kafka, topics["events_topic"], 2)
    assert sorted(Event.from_bytes(r.value).event_id for r in records) == ["marker", "once"]
