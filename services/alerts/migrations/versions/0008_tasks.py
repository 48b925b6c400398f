"""Tasks and their history: owned work started by playbooks.

Revision ID: alerts_0008
Revises: alerts_0007
Create Date: 2026-12-08
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0008"
down_revision: str | None = "alerts_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer, "sqlite")
OPEN_UNESCALATED = "state = 'open' AND escalated_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "alert_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("playbook", sa.String(100), nullable=False),
        sa.Column("playbook_ref", sa.String(120), nullable=False),
        sa.Column("playbook_set", sa.String(120), nullable=False),
        sa.Column("step", sa.String(100), nullable=False),
        sa.Column("trigger", sa.String(200), nullable=False),
        sa.Column("episode", sa.String(300), nullable=False),
        sa.Column("alert_id", sa.String(36)),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("checklist", sa.JSON, nullable=False),
        sa.Column("owner_role", sa.String(120), nullable=False),
        sa.Column("owner", sa.String(320), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16)),
        sa.Column("note", sa.Text),
        sa.Column("tier", sa.String(1)),
        sa.Column("stage", sa.String(32)),
        sa.Column("segment", sa.String(200)),
        sa.Column("risk", sa.String(16)),
        sa.Column("due_at", sa.DateTime(timezone=True)),
        sa.Column("escalate_at", sa.DateTime(timezone=True)),
        sa.Column("escalated_at", sa.DateTime(timezone=True)),
        sa.Column("snoozed_until", sa.DateTime(timezone=True)),
        sa.Column("cause_resolved_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True)),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("context", sa.JSON, nullable=False),
    )
    for name, columns in (
        ("ix_alert_tasks_created", ["created_at", "id"]),
        ("ix_alert_tasks_state_created", ["state", "created_at", "id"]),
        ("ix_alert_tasks_owner_state_created", ["owner", "state", "created_at", "id"]),
        ("ix_alert_tasks_tier_state_created", ["tier", "state", "created_at", "id"]),
        ("ix_alert_tasks_playbook_created", ["playbook", "created_at", "id"]),
        ("ix_alert_tasks_outcome_created", ["outcome", "created_at", "id"]),
        ("ix_alert_tasks_due", ["state", "due_at"]),
        ("ix_alert_tasks_alert", ["alert_id"]),
    ):
        op.create_index(name, "alert_tasks", columns)
    op.create_index(
        "ix_alert_tasks_escalation_due",
        "alert_tasks",
        ["escalate_at"],
        postgresql_where=sa.text(OPEN_UNESCALATED),
        sqlite_where=sa.text(OPEN_UNESCALATED),
    )
    op.create_table(
        "alert_task_history",
        sa.Column("id", BIG_ID, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.String(36), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(320), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
    )
    op.create_index("ix_alert_task_history_task", "alert_task_history", ["task_id", "id"])


def downgrade() -> None:
    op.drop_table("alert_task_history")
    op.drop_table("alert_tasks")
