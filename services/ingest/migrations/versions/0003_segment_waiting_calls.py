"""Segment calls waiting for their user's group call.

Revision ID: ingest_0003
Revises: ingest_0002
Create Date: 2026-11-29
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0003"
down_revision: str | None = "ingest_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_segment_waiting_calls",
        sa.Column("message_id", sa.String(200), primary_key=True),
        sa.Column("user_id", sa.String(200), nullable=False),
        sa.Column("call", sa.LargeBinary(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_ingest_segment_waiting_calls_user_id", "ingest_segment_waiting_calls", ["user_id"]
    )
    op.create_index(
        "ix_ingest_segment_waiting_calls_expires_at",
        "ingest_segment_waiting_calls",
        ["expires_at"],
    )


def downgrade() -> None:
    op.drop_table("ingest_segment_waiting_calls")
