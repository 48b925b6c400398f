"""Churn risk: the highest risk among the scorecard's rules that hold, with their reasons."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import date

from services.scoring.domain.days import days_before
from services.scoring.domain.signals import Signals
from services.scoring.scorecard import RiskCondition, Scorecard
from shared.scores import Band, Risk

ORDER = {Risk.low: 0, Risk.medium: 1, Risk.high: 2}


@dataclass(frozen=True)
class Facts:
    """What risk rules read besides the state."""

    band: Band
    score: int
    daily_scores: dict[date, int]
    stale: bool


def churn_risk(signals: Signals, facts: Facts, card: Scorecard) -> tuple[Risk, list[str]]:
    matched = [r for r in card.churn_risk.rules if _holds(r.when, signals, facts)]
    if not matched:
        return Risk.low, []
    risk = max((Risk(r.risk) for r in matched), key=ORDER.__getitem__)
    reasons = [r.reason for r in sorted(matched, key=lambda r: -ORDER[Risk(r.risk)])]
    return risk, list(dict.fromkeys(reasons))


def dropped_within(facts: Facts, today: date, days: int) -> int:
    """Points lost since the best close of the ``days`` days before today.

    Earlier days only: today's entry holds whichever score was computed last, and
    that depends on where event batches happened to end."""
    since = days_before(today, days)
    recent = [s for d, s in facts.daily_scores.items() if since <= d < today]
    return max(0, max(recent, default=facts.score) - facts.score)


def _holds(when: RiskCondition, signals: Signals, facts: Facts) -> bool:
    """Every part given holds. It stops at the first part that fails, and the parts
    after it are never worked out (a loop of returns: a generator costs more)."""
    if when.min_age_days is not None:
        age = signals.age_days()
        if age is None or age < when.min_age_days:
            return False
    held = when.for_days or 1
    if when.band is not None and not _band_held(when.band, held, signals, facts):
        return False
    if when.usage_below_baseline is not None:
        window = when.usage_window_days or signals.card.baseline_window_days
        if not _usage_below(when.usage_below_baseline, window, held, signals):
            return False
    if when.active_users_share_below is not None and not _users_lapsing(when, signals):
        return False
    if (
        when.payment_unresolved_days is not None
        and signals.payment_unresolved_days() < when.payment_unresolved_days
    ):
        return False
    if (
        when.dropped_points is not None
        and when.within_days is not None
        and dropped_within(facts, signals.today, when.within_days) < when.dropped_points
    ):
        return False
    if (
        when.payment_failed_unresolved is not None
        and signals.payment_unresolved() != when.payment_failed_unresolved
    ):
        return False
    if (
        when.cancellation_scheduled is not None
        and signals.cancellation_scheduled() != when.cancellation_scheduled
    ):
        return False
    if when.silent_days is not None and signals.silent_days() < when.silent_days:
        return False
    if when.days_past_due is not None and signals.days_past_due() < when.days_past_due:
        return False
    return when.stale is None or facts.stale == when.stale


def _band_held(bands: list[Band], days: int, signals: Signals, facts: Facts) -> bool:
    """The band now, and each of the ``days - 1`` day closes before today, in ``bands``."""
    if facts.band not in bands:
        return False
    card = signals.card
    for back in range(1, days):
        score = facts.daily_scores.get(days_before(signals.today, back))
        if score is None or card.bands.of(score) not in bands:
            return False
    return True


def _users_lapsing(when: RiskCondition, signals: Signals) -> bool:
    """Judged now only: the users' last active days cannot say who was active before."""
    assert when.active_users_share_below is not None
    share = signals.active_users_share(
        when.users_recent_days, when.users_reference_days, when.users_min
    )
    return share is not None and share < when.active_users_share_below


def _usage_below(ratio: float, window: int, days: int, signals: Signals) -> bool:
    """Usage below ``ratio`` of its baseline, and clearly so, at each of the last days."""
    significance = signals.card.baseline.significance
    for back in range(days):
        compared = signals.usage_against_baseline(window, back)
        if compared is None:
            return False
        recent, expected = compared
        if recent >= ratio * expected or (expected - recent) < significance * math.sqrt(expected):
            return False
    return True
