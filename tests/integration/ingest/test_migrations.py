import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from services.alerts.app import MIGRATIONS as ALERTS
from services.cli import app
from services.ingest.app import MIGRATIONS as INGEST
from services.scoring.app import MIGRATIONS as SCORING
from shared.db import create_engine
from shared.migrations import schema_problem, upgrade_to_head

pytestmark = pytest.mark.postgres


async def test_ingest_migrates_an_empty_database_repeatably_beside_the_others(
    database: str,
) -> None:
    engine = create_engine(database)
    try:
        before = await schema_problem(engine, INGEST)
        for migrations in (INGEST, INGEST, SCORING, ALERTS):
            await upgrade_to_head(engine, migrations)
        after = [await schema_problem(engine, m) for m in (INGEST, SCORING, ALERTS)]
    finally:
        await engine.dispose()

    assert before is not None and "run `vitals migrate`" in before
    assert after == [None, None, None]


def test_vitals_migrate_brings_every_database_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for service in ("ingest", "scoring", "alerts"):
        url = f"sqlite+aiosqlite:///{tmp_path}/{service}.db"
        monkeypatch.setenv(f"VITALS_{service.upper()}_DATABASE_URL", url)

    result = CliRunner().invoke(app, ["migrate"])

    assert result.exit_code == 0, result.output
    assert f"ingest: sqlite+aiosqlite:///{tmp_path}/ingest.db is at ingest_0004" in result.output
    assert asyncio.run(_problem(f"sqlite+aiosqlite:///{tmp_path}/ingest.db")) is None


async def _problem(url: str) -> str | None:
    engine = create_engine(url)
    try:
        return await schema_problem(engine, INGEST)
    finally:
        await engine.dispose()
