"""The first health model: pure functions, no I/O.

State in, event in, state and score out. The full scorecard (SCORING.md) replaces
the fixed weights here; the shape of the functions stays.

Components, each 0-100, from the account's rolling state:
- engagement: distinct active users in the last 30 days / licensed seats;
- recency: 100 on the day of the last usage event, falling to 0 after 30 days;
- billing: from the subscription status.
A component without data is left out and its weight shared among the others.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from pydantic import BaseModel, Field

from shared.events import Event, EventKind, SubscriptionStatus
from shared.scores import Band, ScoreChange

WINDOW_DAYS = 30
RECENT_IDS_KEPT = 1000
WEIGHTS = {"engagement": 0.4, "recency": 0.3, "billing": 0.3}
BILLING_SCORES = {
    SubscriptionStatus.active: 100,
    SubscriptionStatus.trialing: 80,
    SubscriptionStatus.past_due: 40,
    SubscriptionStatus.paused: 30,
    SubscriptionStatus.unpaid: 10,
    SubscriptionStatus.canceled: 0,
}
GREEN_AT = 70
YELLOW_AT = 40


class Score(BaseModel):
    health_score: int
    band: Band
    components: dict[str, int]


class AccountState(BaseModel):
    account_id: str
    events_applied: int = 0
    usage_by_day: dict[date, int] = Field(default_factory=dict)
    user_last_seen: dict[str, date] = Field(default_factory=dict)
    last_usage_at: datetime | None = None
    seats: int | None = None
    mrr_minor: int | None = None
    currency: str | None = None
    plan: str | None = None
    subscription_status: SubscriptionStatus | None = None
    name: str | None = None
    owner_csm_email: str | None = None
    segment: str | None = None
    recent_event_ids: list[str] = Field(default_factory=list)
    score: Score | None = None
    sequence: int = 0


def apply_event(state: AccountState, event: Event) -> bool:
    """Fold one event into the state; ``False`` when it was already applied."""
    if event.event_id in state.recent_event_ids:
        return False
    state.recent_event_ids = [*state.recent_event_ids[-(RECENT_IDS_KEPT - 1) :], event.event_id]
    state.events_applied += 1
    if event.kind is EventKind.usage:
        day = event.occurred_at.date()
        state.usage_by_day[day] = state.usage_by_day.get(day, 0) + 1
        if event.user_id is not None:
            seen = state.user_last_seen.get(event.user_id)
            state.user_last_seen[event.user_id] = max(seen, day) if seen else day
        if state.last_usage_at is None or event.occurred_at > state.last_usage_at:
            state.last_usage_at = event.occurred_at
    if event.billing is not None:
        billing = event.billing
        state.seats = billing.seats if billing.seats is not None else state.seats
        state.mrr_minor = billing.mrr_minor if billing.mrr_minor is not None else state.mrr_minor
        state.currency = billing.currency or state.currency
        state.plan = billing.plan or state.plan
        state.subscription_status = billing.subscription_status or state.subscription_status
    if event.traits is not None:
        state.name = event.traits.name or state.name
        state.owner_csm_email = event.traits.owner_csm_email or state.owner_csm_email
        state.segment = event.traits.segment or state.segment
    return True


def forget_before(state: AccountState, as_of: datetime) -> None:
    """Drop usage older than the window, so state stays bounded."""
    cutoff = as_of.date() - timedelta(days=WINDOW_DAYS)
    state.usage_by_day = {d: n for d, n in state.usage_by_day.items() if d > cutoff}
    state.user_last_seen = {u: d for u, d in state.user_last_seen.items() if d > cutoff}


def components(state: AccountState, as_of: datetime) -> dict[str, int]:
    found: dict[str, int] = {}
    cutoff = as_of.date() - timedelta(days=WINDOW_DAYS)
    active_users = sum(1 for day in state.user_last_seen.values() if day > cutoff)
    if state.seats and active_users:
        found["engagement"] = round(min(1.0, active_users / state.seats) * 100)
    if state.last_usage_at is not None:
        idle_days = max(0.0, (as_of - state.last_usage_at).total_seconds() / 86400)
        found["recency"] = round(max(0.0, 1 - idle_days / WINDOW_DAYS) * 100)
    if state.subscription_status is not None:
        found["billing"] = BILLING_SCORES[state.subscription_status]
    return found


def band_of(health_score: int) -> Band:
    if health_score >= GREEN_AT:
        return Band.green
    return Band.yellow if health_score >= YELLOW_AT else Band.red


def compute_score(state: AccountState, as_of: datetime) -> Score | None:
    """The weighted score, or ``None`` while no component has data."""
    parts = components(state, as_of)
    if not parts:
        return None
    total_weight = sum(WEIGHTS[name] for name in parts)
    value = round(sum(WEIGHTS[name] * v for name, v in parts.items()) / total_weight)
    return Score(health_score=value, band=band_of(value), components=parts)


def is_material(previous: Score | None, current: Score) -> bool:
    """A change worth a history row and a message: a point or more, or a new band."""
    if previous is None:
        return True
    moved = abs(current.health_score - previous.health_score) >= 1
    return moved or current.band != previous.band


def rescore(state: AccountState, as_of: datetime) -> ScoreChange | None:
    """Recompute the score; return the change to publish, if it is material."""
    forget_before(state, as_of)
    current = compute_score(state, as_of)
    if current is None or not is_material(state.score, current):
        return None
    previous = state.score
    state.score = current
    state.sequence += 1
    return ScoreChange(
        account_id=state.account_id,
        sequence=state.sequence,
        health_score=current.health_score,
        band=current.band,
        previous_score=previous.health_score if previous else None,
        previous_band=previous.band if previous else None,
        components=current.components,
        computed_at=as_of,
    )
