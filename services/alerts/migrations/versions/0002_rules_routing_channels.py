"""Rules, routing and channels: richer alerts, silences, channels, the alerts outbox.

Revision ID: alerts_0002
Revises: alerts_0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "alerts_0002"
down_revision: str | None = "alerts_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OPEN = sa.text("state = 'open'")


def _at(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True))


def upgrade() -> None:
    with op.batch_alter_table("alerts") as alerts:
        alerts.add_column(sa.Column("severity", sa.String(32), nullable=False, server_default=""))
        alerts.add_column(sa.Column("tier", sa.String(1)))
        alerts.add_column(sa.Column("risk", sa.String(16)))
        alerts.add_column(sa.Column("segment", sa.String(200)))
        alerts.add_column(sa.Column("owner_email", sa.String(320)))
        alerts.add_column(sa.Column("owner_slack", sa.String(200)))
        alerts.add_column(sa.Column("details", sa.JSON))
        alerts.add_column(sa.Column("last_event", sa.JSON))
        alerts.add_column(_at("last_notified_at"))
        alerts.add_column(
            sa.Column("notifications", sa.Integer, nullable=False, server_default="0")
        )
        alerts.add_column(_at("acked_at"))
        alerts.add_column(sa.Column("acked_by", sa.String(200)))
        alerts.add_column(_at("snoozed_until"))
        alerts.add_column(_at("updated_at"))
    op.create_index(
        "uq_alerts_one_open",
        "alerts",
        ["account_id", "rule"],
        unique=True,
        postgresql_where=OPEN,
        sqlite_where=OPEN,
    )
    op.create_index("ix_alerts_state_opened", "alerts", ["state", "opened_at"])
    with op.batch_alter_table("alert_deliveries") as deliveries:
        deliveries.add_column(sa.Column("kind", sa.String(16)))
        deliveries.add_column(sa.Column("transition", sa.String(16)))
        deliveries.add_column(sa.Column("recipients", sa.JSON))
        deliveries.add_column(_at("message_at"))
        deliveries.add_column(_at("dead_at"))
    op.create_index("ix_alert_deliveries_alert", "alert_deliveries", ["alert_id"])
    with op.batch_alter_table("alert_account_cursors") as cursors:
        cursors.add_column(
            sa.Column("health_history", sa.JSON, nullable=False, server_default="[]")
        )
    op.create_table(
        "alert_silences",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(200)),
        sa.Column("rule", sa.String(100)),
        sa.Column("tier", sa.String(1)),
        sa.Column("owner", sa.String(320)),
        _at("starts_at"),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_alert_silences_ends", "alert_silences", ["ends_at"])
    op.create_table(
        "alert_channels",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("disabled_reason", sa.Text),
        _at("paused_until"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alert_config",
        sa.Column("key", sa.String(50), primary_key=True),
        sa.Column("document", sa.JSON, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "alert_events_outbox",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("account_id", sa.String(200), nullable=False),
        sa.Column("event", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        _at("published_at"),
    )
    op.create_index(
        "ix_alert_events_unpublished", "alert_events_outbox", ["published_at", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("alert_events_outbox")
    op.drop_table("alert_config")
    op.drop_table("alert_channels")
    op.drop_table("alert_silences")
    with op.batch_alter_table("alert_account_cursors") as cursors:
        cursors.drop_column("health_history")
    op.drop_index("ix_alert_deliveries_alert", "alert_deliveries")
    with op.batch_alter_table("alert_deliveries") as deliveries:
        for name in ("dead_at", "message_at", "recipients", "transition", "kind"):
            deliveries.drop_column(name)
    op.drop_index("ix_alerts_state_opened", "alerts")
    op.drop_index("uq_alerts_one_open", "alerts")
    with op.batch_alter_table("alerts") as alerts:
        for name in (
            "updated_at", "snoozed_until", "acked_by", "acked_at", "notifications",
            "last_notified_at", "last_event", "details", "owner_slack", "owner_email",
            "segment", "risk", "tier", "severity",
        ):  # fmt: skip
            alerts.drop_column(name)
