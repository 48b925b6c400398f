"""Compare-and-set fencing of consumer offsets: a consumer that lost its claim cannot write."""

import logging

import httpx
import pytest
from aiokafka import TopicPartition
from sqlalchemy import select, update

from services.alerts.app import MIGRATIONS as ALERTS
from services.alerts.models import consumer_offsets as alerts_offsets
from services.scoring.app import create_app
from services.scoring.models import consumer_offsets
from shared.db import create_engine, session_factory
from shared.migrations import upgrade_to_head
from shared.offsets import Fenced, check_epochs, claim_partitions, load_offsets, save_offsets
from tests.support.kafka import produce
from tests.support.scoring_builders import usage
from tests.support.scoring_service import applied, records, settings_for
from tests.support.servers import serve, wait_for

pytestmark = [pytest.mark.postgres]

P0, P1 = TopicPartition("events", 0), TopicPartition("events", 1)


async def test_only_the_latest_claim_may_write_positions(scoring_db: str) -> None:
    engine = create_engine(scoring_db)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            old = await claim_partitions(session, consumer_offsets, "g", {P0, P1})
        async with sessions() as session, session.begin():
            await save_offsets(session, consumer_offsets, "g", {P0: 5, P1: 7}, old)
        async with sessions() as session, session.begin():
            new = await claim_partitions(session, consumer_offsets, "g", {P0})
        with pytest.raises(Fenced, match="events/0"):
            async with sessions() as session, session.begin():
                await save_offsets(session, consumer_offsets, "g", {P0: 9, P1: 9}, old)
        with pytest.raises(Fenced):
            async with sessions() as session, session.begin():
                await check_epochs(session, consumer_offsets, "g", old)
        async with sessions() as session, session.begin():
            await save_offsets(session, consumer_offsets, "g", {P0: 11}, new)
        async with sessions() as session:
            stored = await load_offsets(session, consumer_offsets, "g", {P0, P1})
    finally:
        await engine.dispose()

    assert (old, new) == ({P0: 1, P1: 1}, {P0: 2})
    assert stored == {P0: 11, P1: 7}  # the fenced write of 9s rolled back whole


async def test_unfenced_tables_keep_the_old_interface(database: str) -> None:
    engine = create_engine(database)
    await upgrade_to_head(engine, ALERTS)
    sessions = session_factory(engine)
    try:
        async with sessions() as session, session.begin():
            await save_offsets(session, alerts_offsets, "g", {P0: 3})
            await save_offsets(session, alerts_offsets, "g", {P0: 4})
        async with sessions() as session:
            stored = await load_offsets(session, alerts_offsets, "g", {P0})
    finally:
        await engine.dispose()

    assert stored == {P0: 4}


@pytest.mark.kafka
async def test_a_consumer_whose_claim_was_taken_rolls_back_and_counts_once_after_rejoining(
    kafka: str, scoring_db: str, topics: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "shared.consumer")
    settings = settings_for(kafka, scoring_db, topics)
    engine = create_engine(scoring_db)
    async with serve(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as api:
        await produce(kafka, topics["events_topic"], records([usage(event_id="first")]))
        await wait_for(applied(api, "acme", 1), 30, "the first event")
        # another replica claims every partition, as after a rebalance this one missed;
        # locking the rows in the consumer's order first, as a replica's claim does, so
        # the claim cannot deadlock with a batch or sweep writing the same rows
        async with engine.begin() as connection:
            order = (consumer_offsets.c.topic, consumer_offsets.c.partition)
            await connection.execute(select(consumer_offsets).order_by(*order).with_for_update())
            await connection.execute(
                update(consumer_offsets).values(epoch=consumer_offsets.c.epoch + 1)
            )
        await produce(kafka, topics["events_topic"], records([usage(event_id="second")]))
        account = await wait_for(applied(api, "acme", 2), 60, "the second event after rejoining")
        metrics = (await api.get("/metrics")).text
    await engine.dispose()

    assert account["events_applied"] == 2
    assert "vitals_scoring_events_applied_total" in metrics
    assert any("claimed by another consumer" in r.getMessage() for r in caplog.records)
