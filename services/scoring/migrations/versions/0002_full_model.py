"""The full scoring model: filterable account columns, history columns, overrides,
the dead-letter outbox and fencing epochs on consumer offsets.

Revision ID: scoring_0002
Revises: scoring_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0002"
down_revision: str | None = "scoring_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
UNPUBLISHED = sa.text("published_at IS NULL")


def account_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("partition", sa.Integer),
        sa.Column("tier", sa.String(1)),
        sa.Column("risk", sa.String(16)),
        sa.Column("stage", sa.String(32)),
        sa.Column("owner", sa.String(320)),
        sa.Column("segment", sa.String(200)),
        sa.Column("mrr_minor", sa.BigInteger),
        sa.Column("score_change", sa.Integer),
        sa.Column("value_score", sa.Integer),
        sa.Column("stale", sa.Boolean),
        sa.Column("scored_at", sa.DateTime(timezone=True)),
    ]


ACCOUNT_INDEXES = {
    "ix_accounts_partition": "partition",
    "ix_accounts_tier": "tier",
    "ix_accounts_band": "band",
    "ix_accounts_risk": "risk",
    "ix_accounts_stage": "stage",
    "ix_accounts_owner": "owner",
    "ix_accounts_segment": "segment",
    "ix_accounts_mrr": "mrr_minor",
    "ix_accounts_health_score": "health_score",
    "ix_accounts_score_change": "score_change",
}


def history_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("tier", sa.String(1)),
        sa.Column("risk", sa.String(16)),
        sa.Column("stage", sa.String(32)),
        sa.Column("value_score", sa.Integer),
    ]


def upgrade() -> None:
    for column in account_columns():
        op.add_column("accounts", column)
    for name, column_name in ACCOUNT_INDEXES.items():
        op.create_index(name, "accounts", [column_name])
    for column in history_columns():
        op.add_column("score_history", column)
    op.create_index("ix_score_history_account_time", "score_history", ["account_id", "computed_at"])
    op.add_column(
        "scoring_consumer_offsets",
        sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "scoring_dead_letters",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        "ix_scoring_dead_letters_unpublished",
        "scoring_dead_letters",
        ["id"],
        postgresql_where=UNPUBLISHED,
        sqlite_where=UNPUBLISHED,
    )
    op.create_table(
        "account_overrides",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("field", sa.String(8), nullable=False),
        sa.Column("value", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True)),
        sa.Column("lifted_by", sa.String(200)),
        sa.Column("lift_reason", sa.Text),
        sa.Column("lapsed_at", sa.DateTime(timezone=True)),
        sa.Column("pending", sa.Boolean, nullable=False),
    )
    op.create_index("ix_account_overrides_account", "account_overrides", ["account_id"])
    op.create_index(
        "ix_account_overrides_pending",
        "account_overrides",
        ["account_id"],
        postgresql_where=sa.text("pending"),
        sqlite_where=sa.text("pending"),
    )


def downgrade() -> None:
    op.drop_table("account_overrides")
    op.drop_table("scoring_dead_letters")
    with op.batch_alter_table("scoring_consumer_offsets") as batch:
        batch.drop_column("epoch")
    op.drop_index("ix_score_history_account_time", "score_history")
    with op.batch_alter_table("score_history") as batch:
        for column in history_columns():
            batch.drop_column(column.name)
    for name in ACCOUNT_INDEXES:
        op.drop_index(name, "accounts")
    with op.batch_alter_table("accounts") as batch:
        for column in account_columns():
            batch.drop_column(column.name)
