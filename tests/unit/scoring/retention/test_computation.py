"""Retention's pure computation: months of MRR, renewal outcomes, GRR and NRR."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.scoring.domain import AccountState, Limits, apply_events
from services.scoring.retention.computation import (
    MonthMrr,
    Movement,
    Outcome,
    add_months,
    mrr_months,
    periods_between,
    renewal_outcome,
    retention,
)
from services.scoring.retention.currency import Rates, RatesError, RatesFile, parse_rates
from services.scoring.settings import ScoringSettings
from shared.events import Billing, Event, EventKind, PaymentOutcome

RATES = Rates("USD", date(2026, 12, 1), {"EUR": Decimal("1.10"), "JPY": Decimal("0.0065")})
JAN, FEB, MAR, APR = (date(2026, m, 1) for m in (1, 2, 3, 4))


def _billing(day: date, n: int, **fields: object) -> Event:
    at = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
    return Event(
        event_id=f"e{n}",
        account_id="acme",
        kind=EventKind.billing,
        name="subscription.updated",
        occurred_at=at,
        received_at=at,
        billing=Billing.model_validate({"currency": "EUR", **fields}),
    )


def _state(*events: Event) -> AccountState:
    state = AccountState(account_id="acme")
    apply_events(state, events, Limits(lateness=timedelta(days=400)))
    return state


def test_home_currency_converts_through_minor_units() -> None:
    assert RATES.convert(1000, "USD") == 1000
    assert RATES.convert(1000, "EUR") == 1100  # 10.00 EUR is 11.00 USD
    assert RATES.convert(100_000, "JPY") == 65_000  # 100,000 yen is 650.00 USD
    assert RATES.convert(1000, "GBP") is None
    assert RATES.knows("USD") and not RATES.knows("GBP")


def test_a_rates_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "rates.yaml"
    path.write_text("as_of: 2026-12-01\nrates: {EUR: 1.10}\n")
    rates = RatesFile(path, "USD")
    assert rates.current().convert(100, "EUR") == 110
    path.write_text("as_of: 2026-12-02\nrates: {EUR: 1.20, GBP: 1.25}\n")
    assert rates.current().as_of == date(2026, 12, 2)
    assert rates.current().convert(100, "GBP") == 125
    path.write_text("rates: {EUR: -1}\n")  # unusable: the last good rates stay
    assert rates.current().convert(100, "EUR") == 120


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("rates: {EUR: 0}", "positive"),
        ("rates: {euro: 1}", "ISO 4217"),
        ("home: EUR\nrates: {GBP: 1}", "home EUR"),
        ("[1, 2]", "expected a mapping"),
        ("as_of: soon\nrates: {}", "as_of"),
    ],
)
def test_an_unusable_rates_file_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(RatesError, match=says):
        parse_rates(text, "USD")


def test_months_hold_each_months_last_mrr_and_the_month_before() -> None:
    state = _state(
        _billing(date(2026, 1, 5), 1, mrr_minor=100),
        _billing(date(2026, 1, 20), 2, mrr_minor=150),
        _billing(date(2026, 3, 2), 3, mrr_minor=0, subscription_status="canceled"),
    )
    assert mrr_months(state) == {
        JAN: MonthMrr(150, 0, 0, last_in_quarter=False),
        MAR: MonthMrr(0, 150, 0, last_in_quarter=True),
    }


def test_a_quarter_starts_where_the_quarter_before_ended() -> None:
    state = _state(
        _billing(date(2025, 11, 5), 1, mrr_minor=100),
        _billing(date(2026, 1, 5), 2, mrr_minor=200),
        _billing(date(2026, 2, 5), 3, mrr_minor=300),
        _billing(date(2026, 4, 5), 4, mrr_minor=250),
    )
    months = mrr_months(state)
    assert months[FEB] == MonthMrr(300, 200, 100, last_in_quarter=True)
    assert not months[JAN].last_in_quarter
    assert months[APR] == MonthMrr(250, 300, 300, last_in_quarter=True)


def test_retention_matches_its_definitions() -> None:
    # January: 1,000 USD paying. February: +100 expansion, -50 contraction, -200 churn,
    # +300 new; 1,000 EUR (1,100 USD) paying since January, contracted by 100 EUR.
    moves = [
        Movement(JAN, "USD", None, new=1000),
        Movement(FEB, "USD", None, new=300, expansion=100, contraction=50, churn=200),
        Movement(JAN, "EUR", None, new=1000),
        Movement(FEB, "EUR", None, contraction=100),
        Movement(FEB, "GBP", None, new=500),
    ]
    figures = retention(moves, RATES, FEB, [FEB, MAR])
    feb, mar = figures.periods
    assert feb.starting == 1000 + 1100
    assert (feb.new, feb.expansion, feb.contraction, feb.churn) == (300, 100, 50 + 110, 200)
    assert feb.grr == pytest.approx((2100 - 160 - 200) / 2100)
    assert feb.nrr == pytest.approx((2100 + 100 - 160 - 200) / 2100)
    assert feb.movement == feb.ending - feb.starting == 300 + 100 - 160 - 200
    assert mar.starting == feb.ending and mar.movement == 0 and mar.grr == 1.0
    assert figures.unconverted == {"GBP": 500}


def test_without_a_start_there_is_no_ratio() -> None:
    (jan,) = retention([Movement(JAN, "USD", None, new=10)], RATES, JAN, [JAN]).periods
    assert jan.starting == 0 and jan.grr is None and jan.nrr is None and jan.ending == 10


def test_groups_carry_their_own_start() -> None:
    moves = [Movement(JAN, "USD", "S", new=900), Movement(JAN, "USD", "C", new=100)]
    moves.append(Movement(FEB, "USD", "C", churn=100))
    figures = retention(moves, RATES, FEB, [FEB])
    by = {f.group: f for f in figures.periods}
    assert by["S"].nrr == 1.0 and by["C"].grr == 0.0


def test_periods_and_months() -> None:
    assert periods_between(date(2026, 2, 10), date(2026, 7, 1), quarterly=True) == [
        JAN,
        APR,
        date(2026, 7, 1),
    ]
    assert periods_between(FEB, MAR, quarterly=False) == [FEB, MAR]
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 3, 15), -12) == date(2025, 3, 15)


ANNUAL = {"term_months": 12, "subscription_started_on": "2025-03-01"}


def test_an_annual_period_rolled_over_and_paid_is_renewed() -> None:
    state = _state(
        _billing(date(2025, 3, 1), 1, mrr_minor=1000, renewal_date="2026-03-01", **ANNUAL),
        _billing(date(2026, 3, 1), 2, mrr_minor=1000, renewal_date="2027-03-01", **ANNUAL),
        _billing(date(2026, 3, 1), 3, payment=PaymentOutcome.paid),
    )
    result = renewal_outcome(state)
    assert result is not None and result.outcome is Outcome.renewed
    assert result.renewal_date == date(2026, 3, 1)


def test_a_lower_amount_at_renewal_is_a_downgrade_and_unpaid_is_nothing_yet() -> None:
    events = [
        _billing(date(2025, 3, 1), 1, mrr_minor=1000, renewal_date="2026-03-01", **ANNUAL),
        _billing(date(2026, 3, 1), 2, mrr_minor=600, renewal_date="2027-03-01", **ANNUAL),
    ]
    assert renewal_outcome(_state(*events)) is None
    paid = _billing(date(2026, 3, 2), 3, payment=PaymentOutcome.paid)
    result = renewal_outcome(_state(*events, paid))
    assert result is not None and result.outcome is Outcome.downgraded
    assert (result.mrr_before_minor, result.mrr_after_minor) == (1000, 600)
    later = _billing(date(2026, 6, 1), 4, mrr_minor=400)  # a change later in the term
    settled = renewal_outcome(_state(*events, paid, later))
    assert settled == result


def test_a_cancellation_at_period_end_churns_at_the_renewal_date() -> None:
    scheduled = [
        _billing(date(2025, 3, 1), 1, mrr_minor=1000, renewal_date="2026-03-01", **ANNUAL),
        _billing(date(2026, 1, 5), 2, cancel_at_period_end=True),
    ]
    assert renewal_outcome(_state(*scheduled)) is None  # not yet come
    ended = _billing(date(2026, 3, 1), 3, mrr_minor=0, subscription_status="canceled")
    result = renewal_outcome(_state(*scheduled, ended))
    assert result is not None and result.outcome is Outcome.churned
    assert result.renewal_date == date(2026, 3, 1)


def test_monthly_plans_and_first_periods_record_no_renewal() -> None:
    monthly = _state(
        _billing(date(2026, 1, 1), 1, mrr_minor=10, renewal_date="2026-02-01", term_months=1),
        _billing(date(2026, 1, 1), 2, payment=PaymentOutcome.paid),
    )
    first = _state(
        _billing(date(2026, 3, 1), 1, mrr_minor=10, renewal_date="2027-03-01", term_months=12),
        _billing(date(2026, 3, 1), 2, payment=PaymentOutcome.paid),
    )
    assert renewal_outcome(monthly) is None and renewal_outcome(first) is None


def test_the_settings_refuse_an_unusable_rates_file(tmp_path: Path) -> None:
    path = tmp_path / "rates.yaml"
    path.write_text("rates: {EUR: nothing}\n")
    with pytest.raises(ValidationError, match=r"rates\.yaml: the rate of EUR"):
        ScoringSettings(scoring_currency_rates_path=path)
    path.write_text("rates: {EUR: 1.1}\n")
    assert ScoringSettings(scoring_currency_rates_path=path, home_currency="CHF").home_currency
