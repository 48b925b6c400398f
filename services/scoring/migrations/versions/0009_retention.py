"""Revenue retention and renewals: each account's MRR at the end of every month it was
told (event time, its own currency), at the end of the month and quarter before, written with
the account's state, which GRR and NRR are computed from; and what became of each
renewal (renewed, downgraded, churned). Rows fill as scoring next folds each
account's billing events.

Revision ID: scoring_0009
Revises: scoring_0008
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0009"
down_revision: str | None = "scoring_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "account_mrr_months",
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("month", sa.Date(), nullable=False),
        sa.Column("mrr_minor", sa.BigInteger(), nullable=False),
        sa.Column("previous_mrr_minor", sa.BigInteger(), nullable=False),
        sa.Column("quarter_start_mrr_minor", sa.BigInteger(), nullable=False),
        sa.Column("last_in_quarter", sa.Boolean(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.PrimaryKeyConstraint("account_id", "month"),
    )
    op.create_index("ix_account_mrr_months_month", "account_mrr_months", ["month"])
    op.create_table(
        "renewal_outcomes",
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("renewal_day", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("mrr_before_minor", sa.BigInteger(), nullable=True),
        sa.Column("mrr_after_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "renewal_day"),
    )
    op.create_index("ix_renewal_outcomes_day", "renewal_outcomes", ["renewal_day"])


def downgrade() -> None:
    op.drop_table("renewal_outcomes")
    op.drop_table("account_mrr_months")
