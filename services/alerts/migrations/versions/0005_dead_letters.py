"""Dead letters: score messages alerts could not use, sent to the dead-letter topic.

Revision ID: alerts_0005
Revises: alerts_0004
Create Date: 2026-11-28
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0005"
down_revision: str | None = "alerts_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
UNPUBLISHED = sa.text("published_at IS NULL")
TABLE = "alerts_dead_letters"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("key", sa.String(300), nullable=False),
        sa.Column("source", sa.String(300)),
        sa.Column("message", sa.JSON, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True)),
    )
    op.create_index(
        f"ix_{TABLE}_unpublished",
        TABLE,
        ["id"],
        postgresql_where=UNPUBLISHED,
        sqlite_where=UNPUBLISHED,
    )
    op.create_index(f"uq_{TABLE}_source", TABLE, ["source"], unique=True)


def downgrade() -> None:
    op.drop_table(TABLE)
