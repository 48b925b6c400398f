"""Where the test Kafka and PostgreSQL are, and fresh databases and topics on them.

``make test`` starts both with the ``deploy/local`` scripts and exports their
addresses. A test that cannot reach them fails, naming the command that starts
them: it never skips, so a green run always means the real servers were used.
"""

from __future__ import annotations

import os
import socket
import uuid

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from shared.migrations import MigrationSet, upgrade_database

KAFKA_BOOTSTRAP = os.environ.get("VITALS_TEST_KAFKA_BOOTSTRAP", "127.0.0.1:9092")
POSTGRES_URL = os.environ.get(
    "VITALS_TEST_POSTGRES_URL", "postgresql+asyncpg://vitals@127.0.0.1:5433/postgres"
)


def require(what: str, host: str, port: int, how: str) -> None:
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError as exc:
        message = f"{what} is not reachable at {host}:{port} ({exc}); start it with: {how}"
        pytest.fail(message, pytrace=False)


def missing_tool(message: str) -> None:
    """A tool a test needs is not installed: the test fails, naming how to install it.
    Never a skip, as for the servers above."""
    pytest.fail(message, pytrace=False)


def require_kafka() -> str:
    host, _, port = KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")
    require("Kafka", host, int(port), "deploy/local/kafka.sh start (or make test)")
    return KAFKA_BOOTSTRAP


def require_postgres() -> str:
    url = make_url(POSTGRES_URL)
    how = "deploy/local/postgres.sh start (or make test)"
    require("PostgreSQL", url.host or "127.0.0.1", url.port or 5432, how)
    return POSTGRES_URL


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def new_database_url(admin_url: str) -> str:
    """The URL of a database that does not exist yet."""
    name = f"vitals_test_{uuid.uuid4().hex[:12]}"
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False)


async def create_database(admin_url: str, url: str | None = None) -> str:
    """A new, empty database (at ``url`` if given); returns its SQLAlchemy URL."""
    url = url or new_database_url(admin_url)
    name = make_url(url).database
    connection = await asyncpg.connect(_dsn(admin_url))
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    return url


async def drop_database(admin_url: str, url: str) -> None:
    name = make_url(url).database
    connection = await asyncpg.connect(_dsn(admin_url))
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


async def migrated_to(database: str, migrations: MigrationSet) -> str:
    """``database`` brought to the head of ``migrations``; returns its URL."""
    await upgrade_database(database, migrations)
    return database


def unique_topics() -> dict[str, str]:
    """Settings overrides giving a test its own topics and consumer groups."""
    run = uuid.uuid4().hex[:10]
    return {
        "events_topic": f"test.{run}.events",
        "scores_topic": f"test.{run}.scores",
        "scoring_consumer_group": f"test-{run}-scoring",
        "alerts_consumer_group": f"test-{run}-alerts",
    }
