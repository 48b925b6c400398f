"""Exact under failure: replicas killed with SIGKILL end where a clean run ends.

Two scoring replicas (real processes, static group members) consume a multi-partition
topic while it is being written; one of them is killed with SIGKILL at a seeded
random moment after each slice of events, and restarted; the second replica joins in
the middle, which rebalances the partitions. A third process scores the same topic
into its own database without any failure. The run spans two days of a fixed clock,
so that tier hysteresis and drop velocity read the day before's closes. At the end of
each day every replica is restarted once, so that its first sweep re-scores every
account with the whole portfolio known; the two databases must then hold exactly the
same end state for every account.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer

from services.scoring.app import MIGRATIONS
from shared.db import create_engine
from shared.kafka import ensure_topics, topic_spec
from shared.migrations import upgrade_to_head
from tests.support.apps import scoring_settings
from tests.support.infra import create_database, drop_database
from tests.support.processes import ServiceProcess
from tests.support.scoring_builders import NOW, V1_SCORECARD
from tests.support.scoring_processes import (
    SWEEP_DONE,
    SWEPT,
    latest_sequences,
    replica_env,
    scoring_replica,
    stop_all,
)
from tests.support.scoring_workload import DatabaseSnapshot, snapshot, workload
from tests.support.servers import wait_for

SEED = 20261122
ACCOUNTS = 36
PARTITIONS = 4
KILLS = 10
SECOND_REPLICA_AFTER = 3  # slices; its joining rebalances the partitions
BATCH = 25  # small transactions: many points to be killed between and inside
FIRST_DAY_SLICES = 5  # scored the day before NOW; the rest on NOW's day
DROPPED = "health dropped 15 points or more within 7 days"

# How long three replicas may take to work through the load after ten kills. It is a
# bound, not a target (speed is the benchmarks' business): on a machine busy with other
# work, 60 s was seen to run out while nothing was wrong.
CATCH_UP_S = 180

pytestmark = pytest.mark.timeout(600)


async def _migrated(postgres_admin: str) -> str:
    url = await create_database(postgres_admin)
    engine = create_engine(url)
    await upgrade_to_head(engine, MIGRATIONS)
    await engine.dispose()
    return url


async def test_replicas_killed_ten_times_end_exactly_where_a_clean_run_ends(
    kafka: str, postgres_admin: str, topics: dict[str, str], tmp_path: Path
) -> None:
    rng = random.Random(SEED)
    load = workload(rng, ACCOUNTS)
    settings = scoring_settings(
        kafka=kafka, database="", topics=topics, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings, [topic_spec(settings, topics["events_topic"])])
    clean_db, killed_db = await _migrated(postgres_admin), await _migrated(postgres_admin)

    def env(database: str, run: str) -> dict[str, str]:
        """Scores the day before NOW until ``_next_day`` moves every replica to NOW."""
        return replica_env(
            kafka=kafka,
            database=database,
            topics={**topics, "scores_topic": f"{topics['scores_topic']}.{run}"},
            group=f"{topics['scoring_consumer_group']}-{run}",
            scorecards=V1_SCORECARD,  # its drop rule is what this load is built to trip
            fixed_clock=(NOW - timedelta(days=1)).isoformat(),
            partitions=PARTITIONS,
            batch_max_records=BATCH,
        )

    clean = scoring_replica("clean", env(clean_db, "clean"), tmp_path)
    first = scoring_replica("a", env(killed_db, "killed"), tmp_path)
    second = scoring_replica("b", env(killed_db, "killed"), tmp_path)
    replicas = [clean, first, second]
    producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
    await producer.start()
    try:
        clean.start()
        first.start()
        await asyncio.gather(clean.wait_ready(), first.wait_ready())
        live = [first]
        slices = _slices(load.records, KILLS + 1)
        for number, records in enumerate(slices):
            await _send(producer, topics["events_topic"], records)
            if number == SECOND_REPLICA_AFTER:
                second.start()
                live.append(second)
            if number < KILLS:
                victim = rng.choice(live)
                # The kill point: a seeded delay into the processing of this slice.
                await asyncio.sleep(rng.uniform(0.0, 0.6))
                victim.kill(signal.SIGKILL)
                victim.start()
                await asyncio.gather(*(r.wait_ready() for r in live))
            if number == FIRST_DAY_SLICES - 1:
                sent = sum(len(s) for s in slices[:FIRST_DAY_SLICES])
                await _next_day(replicas, (clean_db, killed_db), sent)
        for database in (killed_db, clean_db):
            await wait_for(
                _consumed(database, len(load.records)), CATCH_UP_S, "both runs to catch up"
            )
        await _settle(replicas, ACCOUNTS)
        await wait_for(_published(killed_db), 30, "score changes of the killed run published")
        expected = await wait_for(_published(clean_db), 30, "the clean run's changes published")
        # A rebalance while settling starts one more sweep; wait for its end state.
        try:
            got = await wait_for(_same_end(killed_db, expected), 30, "the killed run to settle")
        except AssertionError:
            got = await snapshot(killed_db)  # the assertions below say how it differs
        scores_topic = f"{topics['scores_topic']}.killed"
        on_topic = await latest_sequences(kafka, scores_topic, PARTITIONS)
    finally:
        await producer.stop()
        stop_all(replicas)
        for database in (clean_db, killed_db):
            await drop_database(postgres_admin, database)

    # first starts, kills, two settlings and the change of day
    assert first.starts + second.starts == 2 + KILLS + 3 * 2
    assert len(expected.accounts) == ACCOUNTS
    # The second day read the first day's closes: tiers anchored on them, drops seen.
    days = [len(a["state"]["daily_tiers"]) for a in expected.accounts.values()]
    assert sum(1 for d in days if d == 2) >= ACCOUNTS // 3, days
    assert any(DROPPED in a["state"]["current"]["risk_reasons"] for a in expected.accounts.values())
    applied = sum(a["state"]["events_applied"] for a in expected.accounts.values())
    assert 0 < applied <= load.distinct
    assert expected.dead_letters.get("too_late", 0) >= load.too_late
    for account_id, end in expected.accounts.items():
        assert got.accounts[account_id] == end, account_id
    assert got.accounts.keys() == expected.accounts.keys()
    assert got.positions == expected.positions == len(load.records)
    assert got.dead_letters == expected.dead_letters  # none lost, none written twice
    for account_id, sequences in got.sequences.items():  # per-account sequence: no gap, no twin
        assert sequences == list(range(1, len(sequences) + 1)), account_id
    # Two replicas published from one outbox; the compacted topic keeps the last record
    # per account, which must be its latest change.
    assert on_topic == {account_id: s[-1] for account_id, s in got.sequences.items()}


def _slices(records: list[tuple[bytes, bytes]], count: int) -> list[list[tuple[bytes, bytes]]]:
    size = -(-len(records) // count)
    return [records[i : i + size] for i in range(0, len(records), size)]


async def _send(producer: AIOKafkaProducer, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    sent = [await producer.send(topic, value=value, key=key) for key, value in records]
    await asyncio.gather(*sent)


def _consumed(database: str, total: int) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        return (await snapshot(database)).positions == total

    return condition


def _same_end(
    database: str, expected: DatabaseSnapshot
) -> Callable[[], Awaitable[DatabaseSnapshot | None]]:
    async def condition() -> DatabaseSnapshot | None:
        found = await snapshot(database)
        return found if found.accounts == expected.accounts else None

    return condition


def _published(database: str) -> Callable[[], Awaitable[DatabaseSnapshot | None]]:
    async def condition() -> DatabaseSnapshot | None:
        found = await snapshot(database)
        return found if found.unpublished == 0 else None

    return condition


async def _next_day(replicas: list[ServiceProcess], databases: tuple[str, ...], sent: int) -> None:
    """Close the first day the same way in both runs, then move every replica to NOW.

    A day's close is its last score, computed with the portfolio known then: a sweep
    of every account once both runs consumed the same events fixes it."""
    for database in databases:
        await wait_for(_consumed(database, sent), CATCH_UP_S, "both runs to catch up with the day")
    await _settle(replicas, len((await snapshot(databases[0])).accounts))
    stop_all(replicas)
    for replica in replicas:
        replica.env = {**replica.env, "VITALS_SCORING_FIXED_CLOCK": NOW.isoformat()}
        replica.start()
    await asyncio.gather(*(r.wait_ready() for r in replicas))


async def _settle(replicas: list[ServiceProcess], accounts: int) -> None:
    """Restart every replica: its first sweep re-scores its accounts at the (fixed) time,
    against the portfolio of all the accounts so far."""
    stop_all(replicas)
    for replica in replicas:
        replica.start()
    await asyncio.gather(*(r.wait_ready() for r in replicas))

    async def swept() -> bool:
        return all([await r.metric(SWEEP_DONE) > 0 for r in replicas])

    await wait_for(swept, 30, "every replica to finish a sweep")
    assert await replicas[1].metric(SWEPT) + await replicas[2].metric(SWEPT) >= accounts
