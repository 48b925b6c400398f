"""Tables the alerts service owns. Only migrations change them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.alerts.delivery import sealing
from services.alerts.delivery.channels import open_document, seal_document
from services.alerts.documents import JsonObject
from shared.db import BIG_ID, UtcDateTime
from shared.dead_letter_outbox import DeadLetterOutboxColumns
from shared.offsets import consumer_offsets_table


class Base(DeclarativeBase):
    metadata = MetaData()


class Alert(Base):
    """One episode of an (account, rule) alert; at most one is open per (account, rule)."""

    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "rule", "episode", name="uq_alerts_account_rule_episode"),
        Index(
            "uq_alerts_one_open",
            "account_id",
            "rule",
            unique=True,
            postgresql_where=text("state = 'open'"),
            sqlite_where=text("state = 'open'"),
        ),
        Index("ix_alerts_state_opened", "state", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(100))
    episode: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    severity: Mapped[str] = mapped_column(String(32), default="")
    health_score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(1))
    risk: Mapped[str | None] = mapped_column(String(16))
    segment: Mapped[str | None] = mapped_column(String(200))
    owner_email: Mapped[str | None] = mapped_column(String(320))
    owner_slack: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text)
    details: Mapped[JsonObject | None] = mapped_column(JSON)
    last_event: Mapped[JsonObject | None] = mapped_column(JSON)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    last_notified_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    notifications: Mapped[int] = mapped_column(Integer, default=0)
    acked_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    acked_by: Mapped[str | None] = mapped_column(String(200))
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Delivery(Base):
    """The outbox: one row per (alert notice, channel), sent by the dispatcher.

    ``id`` is the notice's idempotency key: the ``webhook-id`` a receiver dedupes on.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (
        Index("ix_alert_deliveries_due", "status", "next_attempt_at"),
        Index("ix_alert_deliveries_alert", "alert_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str | None] = mapped_column(String(16))
    transition: Mapped[str | None] = mapped_column(String(16))
    recipients: Mapped[list[str] | None] = mapped_column(JSON)
    payload: Mapped[JsonObject] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    message_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    dead_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # Orders an alert's notices made at one time: see engine.ordinal.
    ordinal: Mapped[int | None] = mapped_column(BigInteger)


class AccountCursor(Base):
    """Per account: the last score sequence applied, and recent health for drop rules."""

    __tablename__ = "alert_account_cursors"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(BigInteger)
    # [[computed_at as ISO 8601, health score], ...]
    health_history: Mapped[list[list[str | int]]] = mapped_column(JSON, default=list)


class Silence(Base):
    __tablename__ = "alert_silences"
    __table_args__ = (Index("ix_alert_silences_ends", "ends_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(200))
    rule: Mapped[str | None] = mapped_column(String(100))
    tier: Mapped[str | None] = mapped_column(String(1))
    owner: Mapped[str | None] = mapped_column(String(320))
    starts_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ends_at: Mapped[datetime] = mapped_column(UtcDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SealedDocument(TypeDecorator[JsonObject]):
    """A channel document as JSON, its secret fields encrypted with the key in use:
    every statement stores them encrypted, every row read gives them back plain."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: JsonObject | None, dialect: Dialect) -> JsonObject | None:
        return None if value is None else seal_document(value, sealing.in_use())

    def process_result_value(self, value: JsonObject | None, dialect: Dialect) -> JsonObject | None:
        return None if value is None else open_document(value, sealing.in_use())


class ChannelRow(Base):
    """A channel definition, secrets included (encrypted in the table): never returned
    as is."""

    __tablename__ = "alert_channels"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    source: Mapped[str] = mapped_column(String(8))
    document: Mapped[JsonObject] = mapped_column(SealedDocument())
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ConfigRevision(Base):
    """One row: raised in the transaction of every change to channels, routes or rules,
    so that each replica parses them again once they changed, and only then."""

    __tablename__ = "alert_config_revision"
    __table_args__ = (CheckConstraint("id = 1", name="ck_alert_config_revision_one_row"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger)


class ConfigDocument(Base):
    """Documents set through the admin API (the routing tree), overriding the files."""

    __tablename__ = "alert_config"

    key: Mapped[str] = mapped_column(String(50), primary_key=True)
    document: Mapped[JsonObject] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AlertEventRow(Base):
    """Outbox of ``vitals.alerts``: every transition, published after commit."""

    __tablename__ = "alert_events_outbox"
    __table_args__ = (Index("ix_alert_events_unpublished", "published_at", "created_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    event: Mapped[JsonObject] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    ordinal: Mapped[int | None] = mapped_column(BigInteger)


class AlertsDeadLetter(DeadLetterOutboxColumns, Base):
    """Score messages alerts could not use, written with the batch that met them and
    sent to the dead-letter topic after it committed."""

    __tablename__ = "alerts_dead_letters"


consumer_offsets = consumer_offsets_table(Base.metadata, "alerts_consumer_offsets")


class Task(Base):
    """Owned work a playbook step started for an account in one trigger episode.

    ``id`` derives from (playbook, step, account, episode): a replayed trigger makes
    the same id, and the insert does nothing (``tasks.service``)."""

    __tablename__ = "alert_tasks"
    __table_args__ = (
        # The list answers each filter by an index and reads it in the list's order
        # (newest first, then id): state, owner, tier, playbook, outcome.
        Index("ix_alert_tasks_created", "created_at", "id"),
        Index("ix_alert_tasks_state_created", "state", "created_at", "id"),
        Index("ix_alert_tasks_owner_state_created", "owner", "state", "created_at", "id"),
        Index("ix_alert_tasks_tier_state_created", "tier", "state", "created_at", "id"),
        Index("ix_alert_tasks_playbook_created", "playbook", "created_at", "id"),
        Index("ix_alert_tasks_outcome_created", "outcome", "created_at", "id"),
        Index("ix_alert_tasks_due", "state", "due_at"),
        Index(
            "ix_alert_tasks_escalation_due",
            "escalate_at",
            postgresql_where=text("state = 'open' AND escalated_at IS NULL"),
            sqlite_where=text("state = 'open' AND escalated_at IS NULL"),
        ),
        Index("ix_alert_tasks_alert", "alert_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    playbook: Mapped[str] = mapped_column(String(100))
    playbook_ref: Mapped[str] = mapped_column(String(120))
    """The playbook's id@version that made the task."""
    playbook_set: Mapped[str] = mapped_column(String(120))
    """The playbooks file's id@version."""
    step: Mapped[str] = mapped_column(String(100))
    trigger: Mapped[str] = mapped_column(String(200))
    episode: Mapped[str] = mapped_column(String(300))
    alert_id: Mapped[str | None] = mapped_column(String(36))
    title: Mapped[str] = mapped_column(String(300))
    checklist: Mapped[list[str]] = mapped_column(JSON, default=list)
    owner_role: Mapped[str] = mapped_column(String(120))
    owner: Mapped[str] = mapped_column(String(320))
    state: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[str | None] = mapped_column(String(16))
    note: Mapped[str | None] = mapped_column(Text)
    tier: Mapped[str | None] = mapped_column(String(1))
    stage: Mapped[str | None] = mapped_column(String(32))
    segment: Mapped[str | None] = mapped_column(String(200))
    risk: Mapped[str | None] = mapped_column(String(16))
    due_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalate_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    escalated_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    snoozed_until: Mapped[datetime | None] = mapped_column(UtcDateTime())
    cause_resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    # The score change that started it, for the escalation notice.
    sequence: Mapped[int] = mapped_column(BigInteger)
    context: Mapped[JsonObject] = mapped_column(JSON)


class TaskHistory(Base):
    """Every change to a task: who, when, what (the fields before and after)."""

    __tablename__ = "alert_task_history"
    __table_args__ = (Index("ix_alert_task_history_task", "task_id", "id"),)

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(String(36))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(32))
    changes: Mapped[JsonObject] = mapped_column(JSON)
