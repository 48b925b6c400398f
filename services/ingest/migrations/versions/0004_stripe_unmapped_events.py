"""Billing events of Stripe customers no account is known for, kept aside.

Revision ID: ingest_0004
Revises: ingest_0003
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0004"
down_revision: str | None = "ingest_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_stripe_unmapped_events",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("customer_id", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("customer_email", sa.String(500)),
        sa.Column("customer_name", sa.String(500)),
        sa.Column("amount_minor", sa.BigInteger()),
        sa.Column("mrr_minor", sa.BigInteger()),
        sa.Column("currency", sa.String(3)),
        sa.Column("event", sa.LargeBinary(), nullable=False),
    )
    op.create_index(
        "ix_ingest_stripe_unmapped_events_customer_id",
        "ingest_stripe_unmapped_events",
        ["customer_id"],
    )


def downgrade() -> None:
    op.drop_index("ix_ingest_stripe_unmapped_events_customer_id", "ingest_stripe_unmapped_events")
    op.drop_table("ingest_stripe_unmapped_events")
