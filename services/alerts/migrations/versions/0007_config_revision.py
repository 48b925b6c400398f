"""The configuration revision: one row raised by every change to channels, routes or
rules, so that each replica parses them again at its next batch, and only then.

Revision ID: alerts_0007
Revises: alerts_0006
Create Date: 2026-12-09
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0007"
down_revision: str | None = "alerts_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLE = "alert_config_revision"


def upgrade() -> None:
    table = op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.CheckConstraint("id = 1", name=f"ck_{TABLE}_one_row"),
    )
    op.bulk_insert(table, [{"id": 1, "revision": 0}])


def downgrade() -> None:
    op.drop_table(TABLE)
