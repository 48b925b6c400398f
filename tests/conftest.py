from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from services.scoring.app import MIGRATIONS as SCORING_MIGRATIONS
from tests.support.infra import (
    create_database,
    drop_database,
    migrated_to,
    require_kafka,
    require_postgres,
    unique_topics,
)


@pytest.fixture(scope="session")
def kafka() -> str:
    """Bootstrap servers of the test broker."""
    return require_kafka()


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    return require_postgres()


@pytest.fixture
async def database(postgres_admin: str) -> AsyncIterator[str]:
    """URL of a fresh, empty PostgreSQL database, dropped after the test."""
    url = await create_database(postgres_admin)
    yield url
    await drop_database(postgres_admin, url)


@pytest.fixture
async def scoring_db(database: str) -> str:
    """A fresh PostgreSQL database migrated to the scoring head."""
    return await migrated_to(database, SCORING_MIGRATIONS)


@pytest.fixture
def topics() -> dict[str, str]:
    return unique_topics()
