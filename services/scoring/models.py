"""Tables the scoring service owns. Only migrations change them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ColumnElement,
    Date,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    func,
    literal_column,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BIG_ID, UtcDateTime
from shared.dead_letter_outbox import UNPUBLISHED, DeadLetterOutboxColumns
from shared.offsets import consumer_offsets_table


class Base(DeclarativeBase):
    metadata = MetaData()


class Account(Base):
    """One row per account: its state (JSON) and, as columns, what the API filters on."""

    __tablename__ = "accounts"
    __table_args__ = (
        Index("ix_accounts_partition", "partition"),
        Index("ix_accounts_tier", "tier"),
        Index("ix_accounts_band", "band"),
        Index("ix_accounts_risk", "risk"),
        Index("ix_accounts_stage", "stage"),
        Index("ix_accounts_owner", "owner"),
        Index("ix_accounts_segment", "segment"),
        # Prefix search (LIKE 'abc%') by id and by name, whatever the database's collation.
        Index(
            "ix_accounts_id_prefix", "account_id", postgresql_ops={"account_id": "text_pattern_ops"}
        ),
        Index(
            "ix_accounts_search_name",
            "search_name",
            postgresql_ops={"search_name": "text_pattern_ops"},
        ),
    )

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    health_score: Mapped[int | None] = mapped_column(Integer)
    band: Mapped[str | None] = mapped_column(String(16))
    sequence: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    partition: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(1))
    risk: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    owner: Mapped[str | None] = mapped_column(String(320))
    segment: Mapped[str | None] = mapped_column(String(200))
    mrr_minor: Mapped[int | None] = mapped_column(BigInteger)
    score_change: Mapped[int | None] = mapped_column(Integer)
    value_score: Mapped[int | None] = mapped_column(Integer)
    stale: Mapped[bool | None] = mapped_column(Boolean)
    scored_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    search_name: Mapped[str | None] = mapped_column(String(200))
    """The account's name, case-folded: what a search by name matches."""
    renewal_day: Mapped[int | None] = mapped_column(Integer)
    """The renewal date as days since 1970-01-01: sorted and paged as the other sorts."""
    change_30d: Mapped[int | None] = mapped_column(Integer)
    """Score now minus 30 days ago."""


ATTENTION_DROP = -15
"""Down this many points or more in 30 days: on the attention list."""
ATTENTION_WHERE = text(
    "stage IS DISTINCT FROM 'churned' AND (risk = 'high' OR (risk = 'medium' AND tier IN "
    "('S', 'A')) OR (band <> 'green' AND renewal_day IS NOT NULL) "
    f"OR change_30d <= {ATTENTION_DROP})"
)
"""The accounts that may need attention: the attention list reads only these, by owner
(ix_accounts_attention); its query repeats this condition so the index serves it."""
Index(
    "ix_accounts_attention",
    Account.owner,
    Account.account_id,
    postgresql_where=ATTENTION_WHERE,
    sqlite_where=ATTENTION_WHERE,
)


# Nulls sort as the lowest value in the accounts list, so a keyset cursor sees one total
# order on both databases; written into the SQL (not bound) so that the sort indexes,
# on this very expression, serve the list's queries.
SORT_NULLS_AS = -(2**62)
SORTED_BY = {
    "score": Account.health_score,
    "change": Account.score_change,
    "mrr": Account.mrr_minor,
    "renewal": Account.renewal_day,
}


def sort_key(sort: str) -> ColumnElement[int]:
    """The accounts list's sort expression for ``sort``: one index each, ties by id."""
    return func.coalesce(SORTED_BY[sort], literal_column(str(SORT_NULLS_AS)))


for _sort in SORTED_BY:
    Index(f"ix_accounts_by_{_sort}", sort_key(_sort), Account.account_id)


class ScoreHistory(Base):
    """One row per material score change; doubles as the outbox of ``vitals.scores``."""

    __tablename__ = "score_history"
    __table_args__ = (
        Index("ix_score_history_account_sequence", "account_id", "sequence", unique=True),
        Index("ix_score_history_account_time", "account_id", "computed_at"),
        Index(
            "ix_score_history_unpublished",
            "id",
            postgresql_where=UNPUBLISHED,
            sqlite_where=UNPUBLISHED,
        ),
    )

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(String(200))
    sequence: Mapped[int] = mapped_column(Integer)
    health_score: Mapped[int] = mapped_column(Integer)
    band: Mapped[str] = mapped_column(String(16))
    message: Mapped[dict[str, Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(UtcDateTime())
    published_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    tier: Mapped[str | None] = mapped_column(String(1))
    risk: Mapped[str | None] = mapped_column(String(16))
    stage: Mapped[str | None] = mapped_column(String(32))
    value_score: Mapped[int | None] = mapped_column(Integer)


class DeadLetterOutbox(DeadLetterOutboxColumns, Base):
    """Dead letters written with the batch that rejected them, sent after its commit."""

    __tablename__ = "scoring_dead_letters"


class AccountOverride(Base):
    """A CSM's override of band or tier; rows are never deleted, so they are the audit."""

    __tablename__ = "account_overrides"
    __table_args__ = (
        Index("ix_account_overrides_account", "account_id"),
        Index(
            "ix_account_overrides_pending",
            "account_id",
            postgresql_where=text("pending"),
            sqlite_where=text("pending"),
        ),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(200))
    field: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    lifted_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    lifted_by: Mapped[str | None] = mapped_column(String(200))
    lift_reason: Mapped[str | None] = mapped_column(Text)
    lapsed_at: Mapped[datetime | None] = mapped_column(UtcDateTime())
    created_with_key: Mapped[str | None] = mapped_column(String(100))
    lifted_with_key: Mapped[str | None] = mapped_column(String(100))
    pending: Mapped[bool] = mapped_column(Boolean, default=True)


consumer_offsets = consumer_offsets_table(Base.metadata, "scoring_consumer_offsets", fenced=True)


class PortfolioDay(Base):
    """The portfolio as the first sweep of a day found it, one row per owner and segment
    ('' for none): what the console's 30-day movement compares with.

    ``figures``: ``[[tier, band, risk, accounts, mrr_minor], ...]``, '' for none."""

    __tablename__ = "portfolio_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    owner: Mapped[str] = mapped_column(String(320), primary_key=True)
    segment: Mapped[str] = mapped_column(String(200), primary_key=True)
    figures: Mapped[list[list[str | int]]] = mapped_column(JSON)
