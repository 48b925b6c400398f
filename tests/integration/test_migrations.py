import pytest

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
