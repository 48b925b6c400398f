"""What the attention list reads, as columns: the renewal date (the billing fact scoring
keeps, e.g. Stripe's current_period_end), as days since 1970-01-01 so that the accounts
list sorts and pages by it as by its other integer sorts, with an index like theirs;
and the score's change over 30 days. One
partial index over the accounts that may need attention (not churned, and high risk,
medium risk on S or A, not green with a renewal date, or down 15 points or more in 30
days), by owner, so the list reads only those. Rows fill as scoring next writes them
(every account at its next sweep).

Revision ID: scoring_0008
Revises: scoring_0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0008"
down_revision: str | None = "scoring_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NULLS_AS = -(2**62)  # models.SORT_NULLS_AS, as it was at this revision
# models.ATTENTION_WHERE, as it was at this revision
ATTENTION_WHERE = (
    "stage IS DISTINCT FROM 'churned' AND (risk = 'high' OR (risk = 'medium' AND tier IN "
    "('S', 'A')) OR (band <> 'green' AND renewal_day IS NOT NULL) OR change_30d <= -15)"
)


def upgrade() -> None:
    op.add_column("accounts", sa.Column("renewal_day", sa.Integer(), nullable=True))
    op.add_column("accounts", sa.Column("change_30d", sa.Integer(), nullable=True))
    op.create_index(
        "ix_accounts_attention",
        "accounts",
        ["owner", "account_id"],
        postgresql_where=sa.text(ATTENTION_WHERE),
        sqlite_where=sa.text(ATTENTION_WHERE),
    )
    renewal = sa.text(f"coalesce(renewal_day, {NULLS_AS})")
    op.create_index("ix_accounts_by_renewal", "accounts", [renewal, "account_id"])


def downgrade() -> None:
    op.drop_index("ix_accounts_by_renewal", table_name="accounts")
    op.drop_index("ix_accounts_attention", table_name="accounts")
    op.drop_column("accounts", "change_30d")
    op.drop_column("accounts", "renewal_day")
