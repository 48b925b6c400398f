"""Which API key set or lifted an override, beside the person it names.

Revision ID: scoring_0003
Revises: scoring_0002
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0003"
down_revision: str | None = "scoring_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = ("created_with_key", "lifted_with_key")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("account_overrides", sa.Column(name, sa.String(100)))


def downgrade() -> None:
    with op.batch_alter_table("account_overrides") as batch:
        for name in COLUMNS:
            batch.drop_column(name)
