"""Account states are written in a few statements, keep what a write does not know, and a
write cancelled mid-statement (a shutdown) returns at once without writing anything."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.scoring import repository
from services.scoring.app import MIGRATIONS
from services.scoring.domain import AccountState, Limits, apply_events, rescore
from services.scoring.models import Account
from services.scoring.service import StateWrite
from shared.db import ROWS_PER_STATEMENT, create_engine, session_factory
from shared.migrations import upgrade_to_head
from tests.support.infra import create_database, drop_database
from tests.support.scoring_builders import NOW, billing, default_card, usage

pytestmark = [pytest.mark.postgres]


@pytest.fixture(params=["postgresql", "sqlite"])
async def migrated(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path}/scoring.db"
    else:
        url = await create_database(request.getfixturevalue("postgres_admin"))
    engine = create_engine(url)
    await upgrade_to_head(engine, MIGRATIONS)
    await engine.dispose()
    yield url
    if request.param == "postgresql":
        await drop_database(request.getfixturevalue("postgres_admin"), url)


def _scored(account_id: str) -> StateWrite:
    state = AccountState(account_id=account_id)
    events = [
        billing(account_id=account_id, seats=2, mrr_minor=5_000),
        usage(account_id=account_id, user_id="u1"),
    ]
    apply_events(state, events, Limits())
    result = rescore(state, NOW, default_card())
    return StateWrite(state, result.assessment, result.trend_7d, partition=3)


async def test_more_rows_than_one_statement_takes_and_a_write_that_knows_less_keeps_columns(
    migrated: str,
) -> None:
    engine = create_engine(migrated)
    sessions = session_factory(engine)
    many = _copies(_scored("acct-00000"), ROWS_PER_STATEMENT + 5)
    unscored = StateWrite(many[0].state, None, None, partition=None)
    try:
        async with sessions() as session, session.begin():
            await repository.save_states(session, many, NOW)
        async with sessions() as session, session.begin():
            await repository.save_states(session, [unscored], NOW)
        async with sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Account))
            first = await session.get(Account, "acct-00000")
            loaded = await repository.load_states(session, ["acct-00000", "nobody"])
    finally:
        await engine.dispose()

    assert count == len(many)
    assert first is not None and many[0].assessment is not None
    # Not scored by the second write, and written without a partition: kept.
    assert (first.health_score, first.partition) == (many[0].assessment.health_score, 3)
    assert (first.mrr_minor, first.tier) == (5_000, many[0].assessment.effective_tier)
    assert loaded == {"acct-00000": many[0].state}


async def test_a_write_cancelled_mid_statement_returns_and_writes_nothing(scoring_db: str) -> None:
    """A shutdown cancels the batch in flight; the write must return at once. (asyncpg's
    executemany, cancelled, never returned: SIGTERM left the process hanging.)"""
    engine = create_engine(scoring_db)
    sessions = session_factory(engine)
    writes = _copies(_scored("acct-00000"), 2 * ROWS_PER_STATEMENT + 1)

    async def save() -> None:
        async with sessions() as session, session.begin():
            await repository.save_states(session, writes, NOW)

    async with engine.connect() as blocker:
        # An uncommitted row with the first key: the write waits for it, mid-statement.
        await blocker.execute(
            insert(Account).values(account_id="acct-00000", state={}, sequence=0, updated_at=NOW)
        )
        task = asyncio.create_task(save())
        try:
            await asyncio.wait_for(_waiting_insert(engine), 30)
            task.cancel()
            done, _ = await asyncio.wait([task], timeout=10)
        finally:
            await blocker.rollback()
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Account))
    await engine.dispose()

    assert done == {task}, "the cancelled write did not return"
    assert task.cancelled()
    assert count == 0


def _copies(write: StateWrite, count: int) -> list[StateWrite]:
    """``count`` accounts acct-00000... with the state and score of ``write``."""
    return [
        StateWrite(
            write.state.model_copy(update={"account_id": f"acct-{n:05d}"}),
            write.assessment,
            write.trend_7d,
            write.partition,
        )
        for n in range(count)
    ]


async def _waiting_insert(engine: AsyncEngine) -> None:
    """Return once an INSERT into accounts runs on the server, waiting for a lock."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' "
        "AND wait_event_type = 'Lock' AND query LIKE 'INSERT INTO accounts%'"
    )
    while True:
        async with engine.connect() as connection:
            if await connection.scalar(query):
                return
        await asyncio.sleep(0.05)
