"""The Stripe customer -> account mapping, from customer metadata.

Revision ID: ingest_0002
Revises: ingest_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0002"
down_revision: str | None = "ingest_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_stripe_customer_accounts",
        sa.Column("customer_id", sa.String(200), primary_key=True),
        sa.Column("account_id", sa.String(200)),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ingest_stripe_customer_accounts")
