"""The accounts list's sorts served by an index each: the sort expression (nulls as
the lowest value) and the account id, walked either way. They replace the plain
column indexes, which the list's queries never used.

Revision ID: scoring_0006
Revises: scoring_0005
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "scoring_0006"
down_revision: str | None = "scoring_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NULLS_AS = -(2**62)  # models.SORT_NULLS_AS, as it was at this revision
SORTS = {"score": "health_score", "change": "score_change", "mrr": "mrr_minor"}
PLAIN = {"ix_accounts_health_score": "health_score", "ix_accounts_score_change": "score_change"}


def upgrade() -> None:
    for name in (*PLAIN, "ix_accounts_mrr"):
        op.drop_index(name, table_name="accounts")
    for sort, column in SORTS.items():
        expression = sa.text(f"coalesce({column}, {NULLS_AS})")
        op.create_index(f"ix_accounts_by_{sort}", "accounts", [expression, "account_id"])


def downgrade() -> None:
    for sort in SORTS:
        op.drop_index(f"ix_accounts_by_{sort}", table_name="accounts")
    for name, column in {**PLAIN, "ix_accounts_mrr": "mrr_minor"}.items():
        op.create_index(name, "accounts", [column])
