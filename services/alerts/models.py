"""Tables the alerts service owns. Only migrations change them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, MetaData, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime
from shared.offsets import consumer_offsets_table


class Base(DeclarativeBase):
    metadata = MetaData()


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        UniqueConstraint("account_id", "rule", "episode", name="uq_alerts_account_rule_episode"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(100))
    episode: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    health_score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(16))
    summary: Mapped[str] = mapped_column(Text)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class Delivery(Base):
    """The outbox: one row per (alert transition, channel), sent by the dispatcher."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(36))
    channel: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UtcDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime())


class AccountCursor(Base):
    """The last score sequence applied per account: repeated messages are dropped."""

    __tablename__ = "alert_account_cursors"

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    last_sequence: Mapped[int] = mapped_column(Integer)


consumer_offsets = consumer_offsets_table(Base.metadata, "alerts_consumer_offsets")
