"""Tables of revenue retention and renewals; part of scoring's schema (migration 0009)."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Boolean, Date, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.scoring.models import Base
from shared.db import UtcDateTime


class AccountMrrMonth(Base):
    """An account's MRR at the end of a month (event time), in its own currency; a row
    for each month the MRR was told, written with the account's state. Months without a
    row carry the last one forward, so a row's change from the previous row is the
    account's whole movement in that month."""

    __tablename__ = "account_mrr_months"
    __table_args__ = (Index("ix_account_mrr_months_month", "month"),)

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    month: Mapped[date] = mapped_column(Date, primary_key=True)
    """The month's first day."""
    mrr_minor: Mapped[int] = mapped_column(BigInteger)
    """0 once the subscription is canceled."""
    previous_mrr_minor: Mapped[int] = mapped_column(BigInteger)
    """The MRR at the end of the month before (0: none): the month's movement is the
    difference, so a month's figures are one pass over its rows."""
    quarter_start_mrr_minor: Mapped[int] = mapped_column(BigInteger)
    """The MRR at the end of the quarter before (0: none)."""
    last_in_quarter: Mapped[bool] = mapped_column(Boolean)
    """The account's last row of its quarter: a quarter's figures are one pass over these."""
    currency: Mapped[str | None] = mapped_column(String(3))


class RenewalOutcome(Base):
    """What became of an account's renewal: renewed, downgraded or churned."""

    __tablename__ = "renewal_outcomes"
    __table_args__ = (Index("ix_renewal_outcomes_day", "renewal_day"),)

    account_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    renewal_day: Mapped[int] = mapped_column(Integer, primary_key=True)
    """The renewal date that came due, as days since 1970-01-01."""
    outcome: Mapped[str] = mapped_column(String(16))
    mrr_before_minor: Mapped[int | None] = mapped_column(BigInteger)
    mrr_after_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime())
