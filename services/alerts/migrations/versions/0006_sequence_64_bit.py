"""Score sequences as 64-bit: the score-change contract allows up to 2^63 - 1.

Revision ID: alerts_0006
Revises: alerts_0005
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0006"
down_revision: str | None = "alerts_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("alert_account_cursors") as cursors:
        cursors.alter_column(
            "last_sequence", type_=sa.BigInteger(), existing_type=sa.Integer(), nullable=False
        )


def downgrade() -> None:
    with op.batch_alter_table("alert_account_cursors") as cursors:
        cursors.alter_column(
            "last_sequence", type_=sa.Integer(), existing_type=sa.BigInteger(), nullable=False
        )
