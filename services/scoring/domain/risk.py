"""Churn risk: the highest risk among the scorecard's rules that hold, with their reasons."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

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
    since = today - timedelta(days=days)
    recent = [s for d, s in facts.daily_scores.items() if since <= d < today]
    return max(0, max(recent, default=facts.score) - facts.score)


def _holds(when: RiskCondition, signals: Signals, facts: Facts) -> bool:
    checks: list[bool] = []
    if when.band is not None:
        checks.append(facts.band in when.band)
    if when.dropped_points is not None and when.within_days is not None:
        drop = dropped_within(facts, signals.today, when.within_days)
        checks.append(drop >= when.dropped_points)
    if when.payment_failed_unresolved is not None:
        checks.append(signals.payment_unresolved() == when.payment_failed_unresolved)
    if when.cancellation_scheduled is not None:
        checks.append(signals.cancellation_scheduled() == when.cancellation_scheduled)
    if when.silent_days is not None:
        checks.append(signals.silent_days() >= when.silent_days)
    if when.days_past_due is not None:
        checks.append(signals.days_past_due() >= when.days_past_due)
    if when.stale is not None:
        checks.append(facts.stale == when.stale)
    return all(checks)
