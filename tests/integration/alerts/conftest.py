"""An alerts service on real Kafka and PostgreSQL, with channels and rules from YAML files
written for the test, a fake clock, and helpers to feed it and look inside."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import select

from services.alerts.app import MIGRATIONS, create_app
from services.alerts.models import AccountCursor, Delivery
from shared.db import SessionFactory, create_engine, session_factory
from shared.migrations import upgrade_to_head
from shared.scores import ScoreChange
from tests.support.apps import alerts_settings
from tests.support.clock import FakeClock
from tests.support.kafka import produce
from tests.support.servers import is_ready, serve, wait_for

ADMIN_TOKEN = "test-admin-token-0123456789abcdef"
ADMIN = {"authorization": f"Bearer {ADMIN_TOKEN}"}
LOOPBACK_ALLOWED = {
    "alerts_allow_http_targets": True,
    "alerts_target_allowlist": "127.0.0.1",
    "alerts_admin_token": ADMIN_TOKEN,
}


@dataclass
class AlertsStack:
    api: httpx.AsyncClient
    clock: FakeClock
    database: str
    kafka: str
    topics: dict[str, str]

    async def send(self, *changes: ScoreChange) -> None:
        records = [(c.account_id.encode(), c.to_bytes()) for c in changes]
        await produce(self.kafka, self.topics["scores_topic"], records)

    async def deliveries(self) -> list[Delivery]:
        engine = create_engine(self.database)
        try:
            async with session_factory(engine)() as session:
                query = select(Delivery).order_by(Delivery.created_at, Delivery.id)
                return list((await session.scalars(query)).all())
        finally:
            await engine.dispose()

    async def wait_deliveries(
        self, check: Callable[[list[Delivery]], bool], what: str, timeout_s: float = 30
    ) -> list[Delivery]:
        async def condition() -> list[Delivery] | None:
            rows = await self.deliveries()
            return rows if check(rows) else None

        found: list[Delivery] = await wait_for(condition, timeout_s, what)
        return found

    async def applied(self, sequences: dict[str, int]) -> bool:
        """Whether the service has applied each account's messages up to its sequence."""
        engine = create_engine(self.database)
        try:
            async with session_factory(engine)() as session:
                rows = await session.scalars(
                    select(AccountCursor).where(AccountCursor.account_id.in_(sequences))
                )
                applied = {row.account_id: row.last_sequence for row in rows}
        finally:
            await engine.dispose()
        return applied == sequences

    async def alerts(self, **params: str) -> list[dict[str, Any]]:
        response = await self.api.get("/v1/alerts", params=params)
        assert response.status_code == 200, response.text
        alerts: list[dict[str, Any]] = response.json()["alerts"]
        return alerts


StackFactory = Callable[..., contextlib.AbstractAsyncContextManager[AlertsStack]]


@pytest.fixture
async def sessions(database: str) -> AsyncIterator[SessionFactory]:
    """Sessions on the test's database, migrated to head."""
    engine = create_engine(database)
    await upgrade_to_head(engine, MIGRATIONS)
    yield session_factory(engine)
    await engine.dispose()


@pytest.fixture
def alerts_stack(kafka: str, database: str, topics: dict[str, str], tmp_path: Path) -> StackFactory:
    """Start the service with ``channels`` (the channels file) and ``rules`` (the rules file)."""

    @contextlib.asynccontextmanager
    async def start(
        *,
        channels: dict[str, Any] | None = None,
        rules: dict[str, Any] | None = None,
        clock: FakeClock | None = None,
        **overrides: Any,
    ) -> AsyncIterator[AlertsStack]:
        engine = create_engine(database)
        await upgrade_to_head(engine, MIGRATIONS)
        await engine.dispose()
        files: dict[str, Any] = {}
        if channels is not None:
            files["alerts_channels_file"] = _write(tmp_path / "channels.yaml", channels)
        if rules is not None:
            files["alerts_rules_file"] = _write(tmp_path / "rules.yaml", rules)
        own_topic = {"alerts_topic": f"{topics['scores_topic']}.alerts"}
        settings = alerts_settings(
            kafka=kafka,
            database=database,
            topics=topics,
            **{**LOOPBACK_ALLOWED, **own_topic, **files, **overrides},
        )
        clock = clock or FakeClock()
        async with (
            serve(create_app(settings, clock)) as url,
            httpx.AsyncClient(base_url=url) as api,
        ):
            stack = AlertsStack(api, clock, database, kafka, topics)
            await wait_for(lambda: is_ready(api), 30, "alerts to be ready")
            yield stack

    return start


def _write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path
