"""The portfolio as each day's first sweep found it, per owner and segment: the
console's 30-day movement compares the portfolio now with the day 30 days ago.

Revision ID: scoring_0007
Revises: scoring_0006
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0007"
down_revision: str | None = "scoring_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "portfolio_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("segment", sa.String(200), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("day", "owner", "segment"),
    )


def downgrade() -> None:
    op.drop_table("portfolio_days")
