"""Tables the ingest service owns. Only migrations change them."""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Index, LargeBinary, MetaData, String, Table
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UtcDateTime


class Base(DeclarativeBase):
    metadata = MetaData()


class SeenEvent(Base):
    """An event id claimed for publishing (``published_at`` unset) or published."""

    __tablename__ = "ingest_seen_events"
    __table_args__ = (Index("ix_ingest_seen_events_expires_at", "expires_at"),)

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    claimed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SegmentUserAccount(Base):
    """The account of a Segment user, from the latest ``group`` call seen for it."""

    __tablename__ = "ingest_segment_user_accounts"

    user_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    grouped_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class SegmentWaitingCall(Base):
    """A Segment call whose user had no account yet (an ``identify`` before the user's
    ``group`` call): kept until that call comes, or dead-lettered at ``expires_at``."""

    __tablename__ = "ingest_segment_waiting_calls"
    __table_args__ = (
        Index("ix_ingest_segment_waiting_calls_user_id", "user_id"),
        Index("ix_ingest_segment_waiting_calls_expires_at", "expires_at"),
    )

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(200))
    call: Mapped[bytes] = mapped_column(LargeBinary())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StripeCustomerAccount(Base):
    """The account in a Stripe customer's metadata, from its latest ``customer.*`` event."""

    __tablename__ = "ingest_stripe_customer_accounts"

    customer_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(200))
    as_of: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class StripeUnmappedEvent(Base):
    """A billing event of a Stripe customer no account is known for, kept aside (not an
    account of its own) until the customer is mapped, then published as its account's."""

    __tablename__ = "ingest_stripe_unmapped_events"
    __table_args__ = (Index("ix_ingest_stripe_unmapped_events_customer_id", "customer_id"),)

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())
    customer_email: Mapped[str | None] = mapped_column(String(500))
    customer_name: Mapped[str | None] = mapped_column(String(500))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger())
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger())
    currency: Mapped[str | None] = mapped_column(String(3))
    event: Mapped[bytes] = mapped_column(LargeBinary())
    """The normalised event as it would have been published (``Event.to_bytes``)."""


seen_events = cast(Table, SeenEvent.__table__)
segment_user_accounts = cast(Table, SegmentUserAccount.__table__)
stripe_customer_accounts = cast(Table, StripeCustomerAccount.__table__)
segment_waiting_calls = cast(Table, SegmentWaitingCall.__table__)
stripe_unmapped_events = cast(Table, StripeUnmappedEvent.__table__)
