from collections.abc import AsyncIterator

import pytest

from services.scoring.app import MIGRATIONS
from shared.db import create_engine
from shared.migrations import upgrade_to_head


@pytest.fixture
async def scoring_db(database: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL database migrated to the scoring head."""
    engine = create_engine(database)
    await upgrade_to_head(engine, MIGRATIONS)
    await engine.dispose()
    yield database
