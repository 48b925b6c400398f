"""Value score (0-100) and tier S/A/B/C with hysteresis.

Value = weighted revenue rank in the portfolio, growth, potential and credit (weights
renormalised over what is known), minus penalties. Revenue rank needs figures of the
whole portfolio, so the caller passes them in as :class:`Portfolio`.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from services.scoring.domain.signals import Signals
from services.scoring.scorecard import RevenueShare, Scorecard, Tiers
from shared.scores import Tier

LEVELS = ("C", "AB", "S")
PERCENTILES = tuple(p / 100 for p in range(1, 100))
SHARE_POINTS_MAX = 4096  # past this many distinct MRRs, every k-th: 0.025% resolution


@dataclass(frozen=True)
class Portfolio:
    """Figures of the whole portfolio that an account's value is measured against.

    ``mrr_cut_points``: MRR percentiles, ascending. ``share_points``: ascending
    (MRR, share of the portfolio's revenue that accounts paying more bring)."""

    mrr_cut_points: tuple[int, ...] = field(default_factory=tuple)
    share_points: tuple[tuple[int, float], ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, mrrs: Iterable[int]) -> Portfolio:
        """The portfolio of accounts paying ``mrrs`` (accounts without MRR left out)."""
        values = sorted(mrrs)
        if not values:
            return cls()
        count, total = len(values), sum(values)
        cuts = tuple(values[min(count - 1, int(p * count))] for p in PERCENTILES)
        points: list[tuple[int, float]] = []
        above = 0
        for mrr, same in itertools.groupby(reversed(values)):
            points.append((mrr, above / total if total else 1.0))
            above += mrr * sum(1 for _ in same)
        points.reverse()
        step = -(-len(points) // SHARE_POINTS_MAX)
        return cls(cuts, tuple(points[::step]))

    def revenue_rank(self, mrr_minor: int) -> float | None:
        """0-100: the share of cut points at or below ``mrr_minor``."""
        if not self.mrr_cut_points:
            return None
        return 100 * bisect.bisect_right(self.mrr_cut_points, mrr_minor) / len(self.mrr_cut_points)

    def revenue_share_above(self, mrr_minor: int) -> float | None:
        """0-1: the share of revenue brought by accounts paying more than ``mrr_minor``."""
        if not self.share_points:
            return None
        index = bisect.bisect_right(self.share_points, (mrr_minor, 2.0)) - 1
        return self.share_points[index][1] if index >= 0 else 1.0


def value_score(signals: Signals, card: Scorecard, portfolio: Portfolio) -> int | None:
    model = card.value
    parts: dict[str, float] = {}
    mrr = signals.state.mrr_minor
    rank = portfolio.revenue_rank(mrr) if mrr is not None else None
    if rank is not None:
        parts["revenue_rank"] = rank
    change = signals.mrr_change(model.growth.window_days)
    if change is not None:
        span = model.growth.full_at - model.growth.zero_at
        parts["growth"] = 100 * min(1.0, max(0.0, (change - model.growth.zero_at) / span))
    utilisation = signals.active_users_per_seat(30)
    if utilisation is not None:
        parts["potential"] = 100 * min(1.0, utilisation / model.potential.utilisation_full_at)
    if signals.state.billing.seen:
        failed = signals.failed_payments(model.credit.window_days)
        parts["credit"] = max(0.0, 100 - failed * model.credit.points_per_failed_payment)
    weights = {k: w for k, w in model.weights.positive.items() if k in parts}
    if not weights:
        return None
    total = sum(weights.values())
    value = sum(parts[k] * w / total for k, w in weights.items()) - _penalties(signals, card)
    return min(100, max(0, round(value)))


def _penalties(signals: Signals, card: Scorecard) -> float:
    penalties = card.value.penalties
    points = penalties.per_30_days_past_due * (signals.days_past_due() // 30)
    if signals.payment_unresolved():
        points += penalties.payment_failed_unresolved
    if signals.cancellation_scheduled():
        points += penalties.cancellation_scheduled
    return points


def tier_of(
    value: int, split_score: int | None, previous: Tier | None, tiers: Tiers
) -> Tier | None:
    """The tier, staying put unless ``value`` is past a boundary by the hysteresis."""
    level = _level(value, _level_of(previous), tiers)
    if level == "S":
        return Tier.S
    if level == "C":
        return Tier.C
    return _a_or_b(split_score, previous, tiers)


def _a_or_b(split_score: int | None, previous: Tier | None, tiers: Tiers) -> Tier | None:
    if split_score is None:
        return None  # A or B, but which cannot be told yet
    at_least = tiers.a_vs_b.at_least
    if previous is Tier.A:
        at_least -= tiers.hysteresis
    elif previous is Tier.B:
        at_least += tiers.hysteresis
    return Tier.A if split_score >= at_least else Tier.B


def revenue_tier(
    share_above: float, split_score: int | None, previous: Tier | None, tiers: Tiers
) -> Tier | None:
    """The tier by revenue contribution: S for the accounts that, from the top, bring
    the first ``s_until`` of revenue; C for the tail after ``c_from``; A or B between,
    by engagement. Moving across a boundary takes ``hysteresis`` of revenue share."""
    level = _share_level(share_above, _level_of(previous), tiers.revenue_share)
    if level == "S":
        return Tier.S
    if level == "C":
        return Tier.C
    return _a_or_b(split_score, previous, tiers)


def _share_level(share_above: float, previous: str | None, cuts: RevenueShare) -> str:
    h = cuts.hysteresis if previous is not None else 0.0
    s_until = cuts.s_until + (h if previous == "S" else -h)
    c_from = cuts.c_from + (-h if previous == "C" else h)
    if share_above < s_until:
        return "S"
    return "C" if share_above >= c_from else "AB"


def _level_of(tier: Tier | None) -> str | None:
    if tier is None:
        return None
    return {Tier.S: "S", Tier.A: "AB", Tier.B: "AB", Tier.C: "C"}[tier]


def _level(value: int, previous: str | None, tiers: Tiers) -> str:
    h = tiers.hysteresis if previous is not None else 0.0
    rank = LEVELS.index(previous) if previous is not None else 0
    s_at = tiers.s_at + (h if rank < 2 else -h)
    ab_at = tiers.ab_at + (h if rank < 1 else -h)
    if value >= s_at:
        return "S"
    return "AB" if value >= ab_at else "C"
