import json

import pytest
from sqlalchemy import text

from services.alerts.app import MIGRATIONS as ALERTS
from services.scoring.app import MIGRATIONS as SCORING
from shared.db import create_engine
from shared.migrations import MigrationSet, schema_problem, upgrade_to_head

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("migrations", [SCORING, ALERTS], ids=["scoring", "alerts"])
async def test_upgrade_brings_an_empty_database_to_head_and_is_repeatable(
    database: str, migrations: MigrationSet
) -> None:
    engine = create_engine(database)
    try:
        before = await schema_problem(engine, migrations)
        await upgrade_to_head(engine, migrations)
        await upgrade_to_head(engine, migrations)
        after = await schema_problem(engine, migrations)
    finally:
        await engine.dispose()

    assert before is not None and "run `vitals migrate`" in before
    assert after is None


async def test_a_schema_behind_is_refused_and_one_a_later_release_migrated_is_served(
    database: str,
) -> None:
    engine = create_engine(database)
    try:
        await upgrade_to_head(engine, SCORING, "scoring_0006")
        behind = await schema_problem(engine, SCORING)
        async with engine.begin() as connection:
            await connection.execute(
                text(f"UPDATE {SCORING.version_table} SET version_num = 'scoring_9999'")
            )
        ahead = await schema_problem(engine, SCORING)
    finally:
        await engine.dispose()

    assert behind == f"schema at scoring_0006, expected {SCORING.head()}: run `vitals migrate`"
    assert ahead is None


async def test_the_search_migration_fills_each_existing_accounts_name(database: str) -> None:
    engine = create_engine(database)
    state = {"account_id": "a1", "traits": {"name": ["Ärzte Ohne Grenzen", "2026|e1"]}}
    try:
        await upgrade_to_head(engine, SCORING, "scoring_0004")
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO accounts (account_id, state, sequence, updated_at) "
                    "VALUES ('a1', :state, 0, now()), ('a2', '{}', 0, now())"
                ),
                {"state": json.dumps(state)},
            )
        await upgrade_to_head(engine, SCORING)
        async with engine.connect() as connection:
            rows = (
                await connection.execute(
                    text("SELECT account_id, search_name FROM accounts ORDER BY 1")
                )
            ).all()
    finally:
        await engine.dispose()

    assert [tuple(r) for r in rows] == [("a1", "ärzte ohne grenzen"), ("a2", None)]


async def test_both_services_can_share_one_database(database: str) -> None:
    engine = create_engine(database)
    try:
        await upgrade_to_head(engine, SCORING)
        await upgrade_to_head(engine, ALERTS)
        problems = [await schema_problem(engine, m) for m in (SCORING, ALERTS)]
    finally:
        await engine.dispose()

    assert problems == [None, None]


async def test_an_unreachable_database_is_reported() -> None:
    engine = create_engine("postgresql+asyncpg://vitals@127.0.0.1:1/none")
    try:
        problem = await schema_problem(engine, SCORING)
    finally:
        await engine.dispose()

    assert problem is not None and problem.startswith("unreachable")
