"""Search accounts by a prefix of their id or name: a case-folded name column, filled
from each stored state, and prefix indexes on both.

Revision ID: scoring_0005
Revises: scoring_0004
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0005"
down_revision: str | None = "scoring_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A state keeps each trait as [value, stamp]; the name is the value. lower() folds
# ASCII on SQLite and Unicode on PostgreSQL; the service writes Python's casefold().
NAME = {
    "postgresql": "lower(CAST(state AS json) -> 'traits' -> 'name' ->> 0)",
    "sqlite": "lower(json_extract(state, '$.traits.name[0]'))",
}


def upgrade() -> None:
    op.add_column("accounts", sa.Column("search_name", sa.String(200)))
    dialect = op.get_bind().dialect.name
    op.execute(f"UPDATE accounts SET search_name = substr({NAME[dialect]}, 1, 200)")
    op.create_index(
        "ix_accounts_id_prefix",
        "accounts",
        ["account_id"],
        postgresql_ops={"account_id": "text_pattern_ops"},
    )
    op.create_index(
        "ix_accounts_search_name",
        "accounts",
        ["search_name"],
        postgresql_ops={"search_name": "text_pattern_ops"},
    )


def downgrade() -> None:
    op.drop_index("ix_accounts_search_name", table_name="accounts")
    op.drop_index("ix_accounts_id_prefix", table_name="accounts")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("search_name")
