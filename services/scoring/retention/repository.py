"""Every statement of retention and renewals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from sqlalchemy import Table, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.scoring.models import Account, sort_key
from services.scoring.repository import day_number, day_of
from services.scoring.retention.computation import (
    CONTRACT_MONTHS,
    Movement,
    mrr_months,
    renewal_outcome,
)
from services.scoring.retention.models import AccountMrrMonth, RenewalOutcome
from services.scoring.service import StateWrite
from shared.db import insert_rows, is_postgresql

Dimension = Literal["tier", "segment", "owner"]

_MONTH_UPSERT = (
    "ON CONFLICT (account_id, month) DO UPDATE SET mrr_minor = excluded.mrr_minor, "
    "previous_mrr_minor = excluded.previous_mrr_minor, "
    "quarter_start_mrr_minor = excluded.quarter_start_mrr_minor, "
    "last_in_quarter = excluded.last_in_quarter, currency = excluded.currency "
    "WHERE account_mrr_months.mrr_minor <> excluded.mrr_minor "
    "OR account_mrr_months.previous_mrr_minor <> excluded.previous_mrr_minor "
    "OR account_mrr_months.quarter_start_mrr_minor <> excluded.quarter_start_mrr_minor "
    "OR account_mrr_months.last_in_quarter <> excluded.last_in_quarter "
    "OR COALESCE(account_mrr_months.currency, '') <> COALESCE(excluded.currency, '')"
)
_OUTCOME_UPSERT = (
    "ON CONFLICT (account_id, renewal_day) DO UPDATE SET outcome = excluded.outcome, "
    "mrr_before_minor = excluded.mrr_before_minor, mrr_after_minor = excluded.mrr_after_minor, "
    "currency = excluded.currency, recorded_at = excluded.recorded_at "
    "WHERE renewal_outcomes.outcome <> excluded.outcome "
    "OR COALESCE(renewal_outcomes.mrr_after_minor, -1) <> COALESCE(excluded.mrr_after_minor, -1)"
)


def _table(model: type[AccountMrrMonth] | type[RenewalOutcome]) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


async def record(session: AsyncSession, writes: Sequence[StateWrite], now: datetime) -> None:
    """Keep, with the states of ``writes``, their months' MRR and renewal outcomes."""
    months: list[dict[str, object]] = []
    outcomes: list[dict[str, object]] = []
    for write in writes:
        state = write.state
        for month, told in mrr_months(state).items():
            months.append(
                {
                    "account_id": state.account_id,
                    "month": month,
                    "mrr_minor": told.mrr_minor,
                    "previous_mrr_minor": told.month_start_minor,
                    "quarter_start_mrr_minor": told.quarter_start_minor,
                    "last_in_quarter": told.last_in_quarter,
                    "currency": state.currency,
                }
            )
        result = renewal_outcome(state)
        if result is not None:
            outcomes.append(
                {
                    "account_id": state.account_id,
                    "renewal_day": day_number(result.renewal_date),
                    "outcome": result.outcome.value,
                    "mrr_before_minor": result.mrr_before_minor,
                    "mrr_after_minor": result.mrr_after_minor,
                    "currency": state.currency,
                    "recorded_at": now,
                }
            )
    await insert_rows(session, _table(AccountMrrMonth), months, _MONTH_UPSERT)
    await insert_rows(session, _table(RenewalOutcome), outcomes, _OUTCOME_UPSERT)


@dataclass(frozen=True)
class Scope:
    """Which accounts: their current tier, owner and segment (``None``: any)."""

    tier: str | None = None
    owner: str | None = None
    segment: str | None = None


_MONTHS = """
    SELECT account_id, month AS period, currency, mrr_minor AS now,
        previous_mrr_minor AS before
    FROM account_mrr_months WHERE month < :until"""
_QUARTERS = """
    SELECT account_id, {period} AS period, currency, mrr_minor AS now,
        quarter_start_mrr_minor AS before
    FROM account_mrr_months WHERE month < :until AND last_in_quarter"""


def _period(session: AsyncSession) -> str:
    """A month's quarter, as the quarter's first day."""
    if is_postgresql(session):
        return "CAST(date_trunc('quarter', month) AS date)"
    return "date(month, '-' || ((CAST(strftime('%m', month) AS INTEGER) - 1) % 3) || ' months')"


async def movements(
    session: AsyncSession,
    until: date,
    quarterly: bool,
    by: Dimension | None = None,
    scope: Scope = Scope(),
) -> list[Movement]:
    """Every period's movements before ``until`` (a period's first day), per currency
    (and group ``by``): each account's MRR at the period's end against the period's
    start: one pass over the months' rows, or over the rows that end a quarter."""
    wanted = {"tier": scope.tier, "owner": scope.owner, "segment": scope.segment}
    filters = [f"a.{name} = :{name}" for name, value in wanted.items() if value is not None]
    joined = by is not None or bool(filters)
    moves = _MONTHS if not quarterly else _QUARTERS.format(period=_period(session))
    statement = text(
        f"""
        WITH moves AS ({moves})
        SELECT period, currency, {f"a.{by}" if by else "NULL"} AS grp,
            SUM(CASE WHEN before <= 0 THEN now ELSE 0 END),
            SUM(CASE WHEN before > 0 AND now > before THEN now - before ELSE 0 END),
            SUM(CASE WHEN before > 0 AND now > 0 AND now < before THEN before - now ELSE 0 END),
            SUM(CASE WHEN before > 0 AND now <= 0 THEN before ELSE 0 END)
        FROM moves AS mv {"JOIN accounts AS a ON a.account_id = mv.account_id" if joined else ""}
        {"WHERE " + " AND ".join(filters) if filters else ""}
        GROUP BY period, currency, grp
        """
    )
    values = {"until": until, **{k: v for k, v in wanted.items() if v is not None}}
    rows = await session.execute(statement, values)
    return [
        Movement(_date(p), c, g, int(n or 0), int(e or 0), int(x or 0), int(ch or 0))
        for p, c, g, n, e, x, ch in rows
    ]


def _date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


@dataclass(frozen=True)
class RenewalRow:
    account: Account
    renewal_date: date
    outcome: RenewalOutcome | None
    currency: str | None
    term_months: int | None
    name: str | None


_RENEWAL = sort_key("renewal")  # the expression ix_accounts_by_renewal holds
_CURRENCY = Account.state["billing"]["currency"][0].as_string()
_TERM = Account.state["billing"]["term_months"][0].as_integer()
_NAME = Account.state["traits"]["name"][0].as_string()


async def renewals(
    session: AsyncSession,
    since: date,
    until: date,
    scope: Scope,
    limit: int,
    contracts_only: bool = False,
) -> list[RenewalRow]:
    """Renewals dated from ``since`` to ``until``: the accounts' coming renewal dates,
    and the outcomes recorded for past ones; by date, then account. ``contracts_only``:
    terms of ``CONTRACT_MONTHS`` or longer."""
    first, last = day_number(since), day_number(until)
    wanted = {"tier": scope.tier, "owner": scope.owner, "segment": scope.segment}
    conditions = [getattr(Account, k) == v for k, v in wanted.items() if v is not None]
    if contracts_only:
        conditions.append(_TERM >= CONTRACT_MONTHS)
    columns = (Account, _CURRENCY, _TERM, _NAME)
    coming = (
        select(*columns)
        .where(_RENEWAL.between(first, last), *conditions)
        .order_by(_RENEWAL, Account.account_id)
        .limit(limit)
    )
    decided = (
        select(RenewalOutcome, *columns)
        .join(Account, Account.account_id == RenewalOutcome.account_id)
        .where(RenewalOutcome.renewal_day.between(first, last), *conditions)
        .order_by(RenewalOutcome.renewal_day, RenewalOutcome.account_id)
        .limit(limit)
    )
    found: dict[tuple[int, str], RenewalRow] = {}
    for account, currency, term, name in await session.execute(coming):
        day = day_of(account.renewal_day)
        assert day is not None
        found[(account.renewal_day, account.account_id)] = RenewalRow(
            account, day, None, currency, term, name
        )
    for outcome, account, currency, term, name in await session.execute(decided):
        day = day_of(outcome.renewal_day)
        assert day is not None
        found[(outcome.renewal_day, account.account_id)] = RenewalRow(
            account, day, outcome, outcome.currency or currency, term, name
        )
    return [found[key] for key in sorted(found)][:limit]
