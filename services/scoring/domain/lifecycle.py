"""Lifecycle stage from subscription dates and status."""

from __future__ import annotations

from services.scoring.domain.days import span
from services.scoring.domain.signals import Signals
from services.scoring.scorecard import Scorecard
from shared.events import SubscriptionStatus
from shared.scores import Stage


def stage_of(signals: Signals, card: Scorecard) -> Stage | None:
    """Churned, else renewal window, else by age: onboarding, adoption, steady."""
    state, today, rules = signals.state, signals.today, card.lifecycle
    renewal = state.renewal_date
    if state.status is SubscriptionStatus.canceled:
        return Stage.churned
    if state.cancel_at_period_end and renewal is not None and renewal < today:
        return Stage.churned
    term = state.term_months
    contract = term is None or term >= rules.renewal_min_term_months
    if (
        contract
        and renewal is not None
        and today <= renewal <= today + span(rules.renewal_window_days)
    ):
        return Stage.renewal_window
    start = state.started_on or state.first_seen
    if start is None:
        return None
    age = (today - start).days
    if age < rules.onboarding_days:
        return Stage.onboarding
    return Stage.adoption if age < rules.adoption_days else Stage.steady
