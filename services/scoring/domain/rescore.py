"""Scoring an account at a moment: health, band, drivers, risk, value, tier, stage.

``rescore`` updates the state and returns the score change to publish when the
change is material: the score moved by a point or more, or the band, risk, tier,
stage or the set of overrides changed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from services.scoring.domain.assessment import Assessment
from services.scoring.domain.days import ONE_DAY, days_before
from services.scoring.domain.health import Health, compute_health, drivers
from services.scoring.domain.lifecycle import stage_of
from services.scoring.domain.risk import Facts, churn_risk
from services.scoring.domain.signals import Signals
from services.scoring.domain.state import AccountState, drop_through
from services.scoring.domain.value import Portfolio, revenue_tier, tier_of, value_score
from services.scoring.scorecard import Scorecard, ScorecardSet
from shared.events import SubscriptionStatus
from shared.scores import AccountFacts, Band, ScoreChange, Tier, Trigger

DAILY_SCORES_KEPT = 40
RESCORED_FIELDS = (
    "last",
    "current",
    "daily_scores",
    "daily_tiers",
    "drivers",
    "trend_7d",
    "trend_30d",
    "sequence",
)
"""The fields of an account's state that ``rescore`` writes: what one scorecard made
of the account. Everything else is what its events said."""
PAYING = {SubscriptionStatus.active, SubscriptionStatus.past_due}


@dataclass(frozen=True)
class Override:
    """A CSM's override of an account's band or tier, until ``expires_at``."""

    id: str
    field: Literal["band", "tier"]
    value: str
    expires_at: datetime


@dataclass(frozen=True)
class Rescored:
    change: ScoreChange | None = None
    assessment: Assessment | None = None
    lapsed: list[str] = field(default_factory=list)
    trend_7d: int | None = None


def scorecard_for(state: AccountState, scorecards: ScorecardSet) -> Scorecard:
    return scorecards.for_account(state.trait("segment"), state.plan)


def rescore(
    state: AccountState,
    as_of: datetime,
    card: Scorecard,
    *,
    portfolio: Portfolio | None = None,
    overrides: Iterable[Override] = (),
    trigger: Trigger = Trigger.events,
) -> Rescored:
    """Score ``state`` at ``as_of``; update it; return the material change, if any."""
    active = [o for o in overrides if o.expires_at > as_of]
    lapsed = [o.id for o in overrides if o.expires_at <= as_of]
    signals = Signals(state, as_of, card)
    health = compute_health(signals, card)
    if health is None:
        return Rescored(lapsed=lapsed)
    assessment = _assess(state, signals, health, card, portfolio or Portfolio(), active)
    today = signals.today
    trends = (
        _trend(state.daily_scores, today, 7, health.score),
        _trend(state.daily_scores, today, 30, health.score),
    )
    state.daily_scores[today] = health.score
    state.trend_7d, state.trend_30d = trends
    _close_tier(state, today, assessment.tier)
    horizon = days_before(today, DAILY_SCORES_KEPT)
    drop_through(state.daily_scores, horizon)
    _drop_old_closes(state.daily_tiers, horizon, today)
    previous = state.last
    state.current = assessment
    if previous is not None and not _material(previous, assessment):
        return Rescored(assessment=assessment, lapsed=lapsed, trend_7d=trends[0])
    state.sequence += 1
    state.last = assessment
    change = _change(state, previous, assessment, health, card, trigger, trends)
    if change.drivers:
        state.drivers = change.drivers
    return Rescored(change, assessment, lapsed, trends[0])


def _assess(
    state: AccountState,
    signals: Signals,
    health: Health,
    card: Scorecard,
    portfolio: Portfolio,
    active: list[Override],
) -> Assessment:
    band = card.bands.of(health.score)
    chosen = {o.field: o.value for o in sorted(active, key=lambda o: o.expires_at)}
    effective_band = Band(chosen["band"]) if "band" in chosen else band
    stale = signals.stale()
    facts = Facts(effective_band, health.score, state.daily_scores, stale)
    risk, reasons = churn_risk(signals, facts, card)
    value = value_score(signals, card, portfolio)
    tier = _tier(state, signals, card, portfolio, value, _split(health, signals, card))
    # Validated, though scoring computed every value: pydantic's core does that quicker
    # than model_construct's Python loop over the fields.
    return Assessment.model_validate(
        {
            "computed_at": signals.as_of,
            "scorecard": card.ref,
            "health_score": health.score,
            "band": band,
            "components": health.components,
            "contributions": health.contributions,
            "measures": health.measures,
            "risk": risk,
            "risk_reasons": reasons,
            "value_score": value,
            "tier": tier,
            "stage": stage_of(signals, card),
            "stale": stale,
            "effective_band": effective_band,
            "effective_tier": Tier(chosen["tier"]) if "tier" in chosen else tier,
            "overridden": sorted(chosen),
        }
    )


def _tier(
    state: AccountState,
    signals: Signals,
    card: Scorecard,
    portfolio: Portfolio,
    value: int | None,
    split: int | None,
) -> Tier | None:
    tiers = card.value.tiers
    previous = closing_tier(state, signals.today)
    if tiers.by == "value_score":
        return tier_of(value, split, previous, tiers) if value is not None else None
    mrr = state.mrr_minor
    share_above = portfolio.revenue_share_above(mrr) if mrr is not None else None
    return revenue_tier(share_above, split, previous, tiers) if share_above is not None else None


def _split(health: Health, signals: Signals, card: Scorecard) -> int | None:
    """The score that tells A from B; None until the account has been seen for as long
    as the scorecard asks (its component's window): a part-covered window reads low."""
    split = card.value.tiers.a_vs_b
    if split.min_history_days is not None and signals.seen_days() < split.min_history_days:
        return None
    return health.components.get(split.component, health.score)


def closing_tier(state: AccountState, today: date) -> Tier | None:
    """The tier hysteresis starts from: the close of the latest day before today.

    Never a tier from earlier today: which scores were computed during a day depends
    on where event batches ended, and the tier must depend on the events only. A
    state stored before day closes were kept falls back to its last material tier."""
    closes = state.daily_tiers
    yesterday = closes.get(today - ONE_DAY)  # the latest before today, on most days
    if yesterday is not None:
        return yesterday
    earlier = [d for d in closes if d < today]
    if earlier:
        return closes[max(earlier)]
    last = state.last
    if not state.daily_tiers and last is not None and last.computed_at.date() < today:
        return last.tier
    return None


def _close_tier(state: AccountState, today: date, tier: Tier | None) -> None:
    if tier is None:
        state.daily_tiers.pop(today, None)  # no value today: the day closes without one
    else:
        state.daily_tiers[today] = tier


def _drop_old_closes(closes: dict[date, Tier], horizon: date, today: date) -> None:
    """Drop the closes at or before ``horizon``, in place, but for the latest before
    today in any case: it anchors hysteresis for the rest of today after a long pause."""
    if not closes or min(closes) > horizon:
        return
    anchor: date | None = today - ONE_DAY  # the latest before today, on most days
    if anchor not in closes:
        anchor = max((d for d in closes if d < today), default=None)
    for day in [d for d in closes if d <= horizon and d != anchor]:
        del closes[day]


def _trend(daily: dict[date, int], today: date, days: int, score: int) -> int | None:
    then = days_before(today, days)
    if (exact := daily.get(then)) is not None:  # a close on that very day, as usual
        return score - exact
    earlier = [d for d in daily if d <= then]
    return score - daily[max(earlier)] if earlier else None


def _material(previous: Assessment, current: Assessment) -> bool:
    return (
        abs(current.health_score - previous.health_score) >= 1
        or current.effective_band != previous.effective_band
        or current.risk != previous.risk
        or current.effective_tier != previous.effective_tier
        or current.stage != previous.stage
        or current.overridden != previous.overridden
    )


def _change(
    state: AccountState,
    previous: Assessment | None,
    now: Assessment,
    health: Health,
    card: Scorecard,
    trigger: Trigger,
    trends: tuple[int | None, int | None],
) -> ScoreChange:
    return ScoreChange(
        account_id=state.account_id,
        sequence=state.sequence,
        health_score=now.health_score,
        band=now.effective_band,
        previous_score=previous.health_score if previous else None,
        previous_band=previous.effective_band if previous else None,
        components=now.components,
        computed_at=now.computed_at,
        trigger=trigger,
        scorecard=now.scorecard,
        drivers=drivers(previous, health, card),
        trend_7d=trends[0],
        trend_30d=trends[1],
        stale=now.stale,
        risk=now.risk,
        previous_risk=previous.risk if previous else None,
        risk_reasons=now.risk_reasons,
        tier=now.effective_tier,
        previous_tier=previous.effective_tier if previous else None,
        value_score=now.value_score,
        previous_value_score=previous.value_score if previous else None,
        stage=now.stage,
        previous_stage=previous.stage if previous else None,
        overridden=[f for f in now.overridden if f in ("band", "tier")],
        account=account_facts(state),
    )


def account_facts(state: AccountState) -> AccountFacts:
    status = state.status
    mrr = state.mrr_minor
    return AccountFacts(
        name=state.trait("name"),
        segment=state.trait("segment"),
        plan=state.plan,
        owner_csm_email=state.trait("owner_csm_email"),
        owner_csm_slack=state.trait("owner_csm_slack"),
        mrr_minor=mrr,
        currency=state.currency,
        seats=state.seats,
        renewal_date=state.renewal_date,
        last_usage_at=state.last_usage_at,
        paying=(status in PAYING and mrr != 0) if status is not None else None,
    )
