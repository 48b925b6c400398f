"""Revenue retention and renewal outcomes. Pure: no I/O, no clock.

- ``mrr_months``: an account's MRR at the end of each recent month, from its state.
- ``renewal_outcome``: what became of a contract's last renewal, as its state tells it.
- ``retention``: GRR and NRR per period from each period's movements, in home currency.
"""

from __future__ import annotations

import calendar
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, timedelta
from enum import StrEnum

from services.scoring.domain import AccountState
from services.scoring.retention.currency import Rates
from shared.events import SubscriptionStatus

MONTHS_WRITTEN_BACK = timedelta(days=92)
"""Months rewritten behind an account's latest event: a late event (within the
lateness bound) or a batch spanning a few months changes no earlier month."""
CONTRACT_MONTHS = 12
"""Renewals are recorded for terms this long or longer (annual contracts)."""
PAID_BEFORE_RENEWAL = timedelta(days=1)
RENEWAL_SETTLES = timedelta(days=8)
"""A renewal's MRR is the MRR a week after the renewal date (the new price and the
paid invoice arrive as separate events): a change later in the term is not the
renewal's."""
"""A payment this long before the renewal date (time zones) counts as the renewal's."""


def month_of(day: date) -> date:
    return day.replace(day=1)


def quarter_of(day: date) -> date:
    return date(day.year, 3 * ((day.month - 1) // 3) + 1, 1)


def add_months(day: date, months: int) -> date:
    """``day`` moved by ``months``, on the month's last day if it has fewer days."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


@dataclass(frozen=True)
class MonthMrr:
    """An account's MRR at the end of a month, and what a month's and a quarter's
    figures compare it with."""

    mrr_minor: int
    month_start_minor: int
    """At the end of the month before (0: none)."""
    quarter_start_minor: int
    """At the end of the quarter before (0: none)."""
    last_in_quarter: bool
    """No later month of its quarter told an MRR: this row ends the quarter."""


def mrr_months(state: AccountState) -> dict[date, MonthMrr]:
    """The account's MRR at the end of each month it was told in, for the months that
    events may still change (``MONTHS_WRITTEN_BACK`` behind its latest event: a whole
    quarter at least, so every month of the latest quarter). The state keeps the last
    MRR before its billing horizon, so what held before is always known."""
    by_day = state.billing.mrr_by_day
    if not by_day or state.watermark is None:
        return {}
    since = month_of(state.watermark.date() - MONTHS_WRITTEN_BACK)
    ends: dict[date, int] = {}
    for day in sorted(by_day):
        ends[month_of(day)] = by_day[day][0]
    months = list(ends)
    found: dict[date, MonthMrr] = {}
    before, quarter_before = 0, 0
    for index, month in enumerate(months):
        if index and quarter_of(months[index - 1]) != quarter_of(month):
            quarter_before = before
        following = months[index + 1] if index + 1 < len(months) else None
        last = following is None or quarter_of(following) != quarter_of(month)
        if month >= since:
            found[month] = MonthMrr(ends[month], before, quarter_before, last)
        before = ends[month]
    return found


class Outcome(StrEnum):
    renewed = "renewed"
    downgraded = "downgraded"
    churned = "churned"


@dataclass(frozen=True)
class RenewalResult:
    renewal_date: date
    outcome: Outcome
    mrr_before_minor: int | None
    mrr_after_minor: int | None


def renewal_outcome(state: AccountState) -> RenewalResult | None:
    """What became of the account's latest contract renewal, if its state says:

    - churned: the subscription is canceled, or its cancellation at the period's end
      has come (the renewal date is behind the latest event); at that renewal date;
    - renewed or downgraded: the period rolled over (the renewal date moved a term on
      from a period that began after the subscription did) and an invoice was paid
      from the previous renewal date on; downgraded when the MRR a week after that
      date (``RENEWAL_SETTLES``) is lower than before it.

    Only contract terms (``CONTRACT_MONTHS`` or longer) renew; ``None`` otherwise."""
    term, renewal = state.term_months, state.renewal_date
    if term is None or term < CONTRACT_MONTHS or renewal is None or state.watermark is None:
        return None
    today = state.watermark.date()
    mrr = state.mrr_minor
    ended = state.cancel_at_period_end and renewal <= today
    if state.status is SubscriptionStatus.canceled or ended:
        return RenewalResult(renewal, Outcome.churned, _mrr_before(state, renewal), mrr)
    previous = add_months(renewal, -term)
    began = state.started_on or state.first_seen
    paid = state.billing.paid_on
    if began is None or began >= previous or paid is None:
        return None
    if not previous - PAID_BEFORE_RENEWAL <= paid <= renewal:
        return None
    before = _mrr_before(state, previous)
    after = _mrr_before(state, previous + RENEWAL_SETTLES) if mrr is not None else None
    lower = before is not None and after is not None and after < before
    return RenewalResult(previous, Outcome.downgraded if lower else Outcome.renewed, before, after)


def _mrr_before(state: AccountState, day: date) -> int | None:
    """The last MRR told before ``day``."""
    earlier = [d for d in state.billing.mrr_by_day if d < day]
    return state.billing.mrr_by_day[max(earlier)][0] if earlier else None


@dataclass(frozen=True)
class Movement:
    """One period's MRR movement of a group of accounts in one currency (minor units):
    what accounts paying nothing before began paying (new), what paying accounts added
    (expansion), lost while still paying (contraction) and lost by stopping (churn)."""

    period: date
    currency: str | None
    group: str | None
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churn: int = 0

    @property
    def net(self) -> int:
        return self.new + self.expansion - self.contraction - self.churn


@dataclass
class PeriodFigures:
    """A period's retention in home currency (minor units)."""

    period: date
    group: str | None
    starting: int = 0
    new: int = 0
    expansion: int = 0
    contraction: int = 0
    churn: int = 0

    @property
    def ending(self) -> int:
        return self.starting + self.movement

    @property
    def movement(self) -> int:
        return self.new + self.expansion - self.contraction - self.churn

    @property
    def grr(self) -> float | None:
        """(starting - contraction - churn) / starting; ``None`` without a start."""
        if self.starting <= 0:
            return None
        return (self.starting - self.contraction - self.churn) / self.starting

    @property
    def nrr(self) -> float | None:
        """(starting + expansion - contraction - churn) / starting."""
        if self.starting <= 0:
            return None
        return (self.starting + self.expansion - self.contraction - self.churn) / self.starting


@dataclass
class Retention:
    periods: list[PeriodFigures] = field(default_factory=list)
    unconverted: dict[str, int] = field(default_factory=dict)
    """Per currency without a rate: its MRR at the end (native minor units), left out."""


def retention(
    movements: Iterable[Movement], rates: Rates, since: date, periods: Iterable[date]
) -> Retention:
    """Each period's figures from ``since`` on, per group, in home currency.

    ``movements`` hold every period up to the last (earlier periods too): a period's
    starting MRR is the sum of all movements before it. Currencies without a rate are
    left out and their MRR at the end reported as unconverted."""
    wanted = sorted(p for p in periods if p >= since)
    by_group: dict[str | None, dict[date, PeriodFigures]] = defaultdict(dict)
    before: dict[str | None, int] = defaultdict(int)
    unconverted: dict[str, int] = defaultdict(int)
    for move in sorted(movements, key=lambda m: m.period):
        home = _in_home(move, rates)
        if home is None:
            unconverted[move.currency or ""] += move.net
            continue
        if move.period < since:
            before[move.group] += home.net
            continue
        figures = by_group[move.group].setdefault(
            move.period, PeriodFigures(move.period, move.group)
        )
        figures.new += home.new
        figures.expansion += home.expansion
        figures.contraction += home.contraction
        figures.churn += home.churn
    result = Retention(unconverted={c: v for c, v in unconverted.items() if v})
    for group in sorted(set(by_group) | set(before), key=lambda g: g or ""):
        starting = before[group]
        for period in wanted:
            figures = by_group[group].get(period) or PeriodFigures(period, group)
            figures.starting = starting
            starting = figures.ending
            result.periods.append(figures)
    return result


def _in_home(move: Movement, rates: Rates) -> Movement | None:
    if move.currency is None or not rates.knows(move.currency):
        return None
    amounts = [move.new, move.expansion, move.contraction, move.churn]
    converted = [rates.convert(a, move.currency) for a in amounts]
    if any(c is None for c in converted):
        return None
    new, expansion, contraction, churn = (c or 0 for c in converted)
    return Movement(move.period, move.currency, move.group, new, expansion, contraction, churn)


def periods_between(since: date, until: date, quarterly: bool) -> list[date]:
    """The first days of the months (or quarters) from ``since``'s to ``until``'s."""
    step, first = (3, quarter_of) if quarterly else (1, month_of)
    found, current = [], first(since)
    while current <= until:
        found.append(current)
        current = add_months(current, step)
    return found
