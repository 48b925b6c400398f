"""Each dead letter's source (kafka:topic/partition@offset), unique: a record that is
read again, whatever the reason, is dead-lettered once.

Revision ID: scoring_0004
Revises: scoring_0003
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0004"
down_revision: str | None = "scoring_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("scoring_dead_letters", sa.Column("source", sa.String(300)))
    op.create_index(
        "uq_scoring_dead_letters_source", "scoring_dead_letters", ["source"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_scoring_dead_letters_source", table_name="scoring_dead_letters")
    with op.batch_alter_table("scoring_dead_letters") as batch:
        batch.drop_column("source")
