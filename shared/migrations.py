"""Alembic, run programmatically: each service keeps its own migrations folder and
its own version table, so services can share a database without clashing."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.db import create_engine
from shared.errors import database_reason


@dataclass(frozen=True)
class MigrationSet:
    service: str
    folder: Path

    @property
    def version_table(self) -> str:
        return f"alembic_version_{self.service}"

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(self.folder))
        config.attributes["version_table"] = self.version_table
        return config

    def head(self) -> str | None:
        return self._scripts[0]

    def knows(self, revision: str) -> bool:
        """Whether ``revision`` is one of this release's migrations."""
        return revision in self._scripts[1]

    @functools.cached_property
    def _scripts(self) -> tuple[str | None, frozenset[str]]:
        """The head and every revision, read from the folder once: readiness asks at
        every /readyz and scrape, and the folder does not change while the process runs."""
        scripts = ScriptDirectory.from_config(self.config())
        return scripts.get_current_head(), frozenset(s.revision for s in scripts.walk_revisions())


async def upgrade_to_head(
    engine: AsyncEngine, migrations: MigrationSet, revision: str = "head"
) -> None:
    """Upgrade to the newest revision (or to ``revision``: tests of a data migration)."""
    config = migrations.config()

    def upgrade(connection: Connection) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(upgrade)


async def upgrade_database(url: str, migrations: MigrationSet) -> None:
    """Bring the database at ``url`` to the head of ``migrations`` (``vitals migrate``)."""
    engine = create_engine(url)
    try:
        await upgrade_to_head(engine, migrations)
    finally:
        await engine.dispose()


async def schema_problem(engine: AsyncEngine, migrations: MigrationSet) -> str | None:
    """``None`` when the database schema is at head, else what to do about it (shown
    on ``/readyz``, so a driver's message is logged, not returned)."""

    def current(connection: Connection) -> str | None:
        options = {"version_table": migrations.version_table}
        return MigrationContext.configure(connection, opts=options).get_current_revision()

    try:
        async with engine.connect() as connection:
            revision = await connection.run_sync(current)
    except (SQLAlchemyError, OSError) as exc:
        return database_reason(exc, f"{migrations.service} database")
    head = migrations.head()
    if revision == head:
        return None
    if revision is not None and not migrations.knows(revision):
        # A later release migrated first (upgrades run the migrations before they roll
        # the pods) and migrations only add to the schema: this release keeps serving
        # until its pods are replaced.
        return None
    return f"schema at {revision or 'nothing'}, expected {head}: run `vitals migrate`"


def run_migrations_in_env(target_metadata: MetaData) -> None:
    """Body of every service's ``migrations/env.py``."""
    config = context.config
    connection = config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations with `vitals migrate`, not the alembic command")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table=config.attributes["version_table"],
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()
