"""SIGTERM while catching up: the process exits promptly, and nothing is lost or doubled.

Kubernetes sends SIGTERM and, after a grace period (30 s by default), SIGKILL. A
catching-up process is almost always inside a batch's transaction, so the signal
cancels database writes in flight.
"""

import signal
import subprocess
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from services.scoring.models import Account
from shared.db import create_engine
from shared.kafka import ensure_topics, topic_spec
from tests.support.apps import scoring_settings
from tests.support.kafka import produce_many
from tests.support.scoring_builders import DEFAULT_SCORECARDS, NOW, usage
from tests.support.scoring_processes import replica_env, scoring_replica
from tests.support.scoring_service import stored_positions
from tests.support.servers import wait_for

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.timeout(240)]

ACCOUNTS = 2_000
EVENTS_PER_ACCOUNT = 20
PARTITIONS = 4
STOPS = 3
GRACE_S = 30


async def test_sigterm_mid_batch_exits_within_the_grace_period_and_counts_each_event_once(
    kafka: str, scoring_db: str, topics: dict[str, str], tmp_path: Path
) -> None:
    settings = scoring_settings(
        kafka=kafka, database="", topics=topics, topic_partitions=PARTITIONS
    )
    await ensure_topics(settings, [topic_spec(settings, topics["events_topic"])])
    events = [
        usage(
            account_id=f"acct-{n:04d}",
            at=NOW - timedelta(minutes=minute),
            user_id=f"u{minute % 5}",
        )
        for minute in range(EVENTS_PER_ACCOUNT)
        for n in range(ACCOUNTS)
    ]
    await produce_many(
        kafka, topics["events_topic"], [(e.account_id.encode(), e.to_bytes()) for e in events]
    )
    env = replica_env(
        kafka=kafka,
        database=scoring_db,
        topics=topics,
        group=topics["scoring_consumer_group"],
        scorecards=DEFAULT_SCORECARDS,
        fixed_clock=NOW.isoformat(),
        partitions=PARTITIONS,
        batch_max_records=5_000,
    )
    replica = scoring_replica("a", env, tmp_path)
    exits: list[int] = []
    try:
        for _ in range(STOPS):
            before = await stored_positions(scoring_db)
            replica.start()
            await replica.wait_ready()
            await wait_for(_beyond(scoring_db, before), 60, "progress before the signal")
            assert replica.process is not None
            replica.process.send_signal(signal.SIGTERM)
            try:
                exits.append(replica.process.wait(timeout=GRACE_S))
            except subprocess.TimeoutExpired:
                pytest.fail(f"still running {GRACE_S} s after SIGTERM:\n{replica.log_tail()}")
        stopped_at = await stored_positions(scoring_db)
        replica.start()
        await wait_for(_beyond(scoring_db, len(events) - 1), 120, "the rest of the topic")
    finally:
        replica.kill(signal.SIGKILL)

    assert all(code in (0, -signal.SIGTERM) for code in exits), exits
    assert 0 < stopped_at < len(events)  # the signals landed mid-stream
    assert replica.log_path.read_text().count("Application shutdown complete") >= STOPS
    assert await _events_applied(scoring_db) == len(events)


def _beyond(database: str, mark: int) -> Callable[[], Awaitable[bool]]:
    async def condition() -> bool:
        return await stored_positions(database) > mark

    return condition


async def _events_applied(database: str) -> int:
    engine = create_engine(database)
    try:
        async with engine.connect() as connection:
            states = (await connection.scalars(select(Account.state))).all()
    finally:
        await engine.dispose()
    return sum(int(state["events_applied"]) for state in states)
