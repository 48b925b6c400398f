"""Per-account state and how events fold into it. Pure: no I/O, no clock.

Everything here is order-independent within the lateness bound: counters add,
sets unite, and "last known" facts are last-writer-wins by (event time, event id),
so the same events in any order give the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from services.scoring.domain.assessment import Assessment
from services.scoring.domain.usage import UsageTotals
from services.scoring.domain.users import ActiveUsers
from services.scoring.scorecard import USAGE_KEPT_DAYS
from shared.events import Billing, Event, EventKind, PaymentOutcome, SubscriptionStatus
from shared.scores import Driver, Tier

# A stamp orders facts: event time (fixed-width UTC text) then event id.
Stamp = str
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
UNRESOLVED = {PaymentOutcome.failed, PaymentOutcome.action_required}


@dataclass(frozen=True)
class Limits:
    """How much state an account keeps; settings of the service, not the scorecard."""

    lateness: timedelta = timedelta(days=7)
    retention_days: int = USAGE_KEPT_DAYS
    billing_retention_days: int = 400
    exact_users_max: int = 1000
    hll_lg_k: int = 12
    features_per_day_max: int = 200


class Outcome(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    too_late = "too_late"


class DayUsage(BaseModel):
    events: int = 0
    features: dict[str, int] = Field(default_factory=dict)


class Payment(BaseModel):
    outcome: PaymentOutcome
    on: date
    due_on: date | None = None


class BillingState(BaseModel):
    """Last known billing facts, each as ``(value, stamp)``; histories by day."""

    mrr_minor: tuple[int, Stamp] | None = None
    currency: tuple[str, Stamp] | None = None
    seats: tuple[int, Stamp] | None = None
    plan: tuple[str, Stamp] | None = None
    status: tuple[SubscriptionStatus, Stamp] | None = None
    started_on: tuple[date, Stamp] | None = None
    renewal_date: tuple[date, Stamp] | None = None
    term_months: tuple[int, Stamp] | None = None
    cancel_at_period_end: tuple[bool, Stamp] | None = None
    payment: tuple[Payment, Stamp] | None = None
    mrr_by_day: dict[date, tuple[int, Stamp]] = Field(default_factory=dict)
    seats_by_day: dict[date, tuple[int, Stamp]] = Field(default_factory=dict)
    paid_on: date | None = Field(None, description="The latest day a payment succeeded.")
    failed_by_day: dict[date, int] = Field(default_factory=dict)
    seen: bool = False


class Traits(BaseModel):
    name: tuple[str, Stamp] | None = None
    owner_csm_email: tuple[str, Stamp] | None = None
    owner_csm_slack: tuple[str, Stamp] | None = None
    segment: tuple[str, Stamp] | None = None


class AccountState(BaseModel):
    account_id: str
    events_applied: int = 0
    watermark: datetime | None = Field(
        None, description="Latest event time seen, capped by receipt."
    )
    first_seen: date | None = None
    last_event_at: datetime | None = None
    last_usage_at: datetime | None = None
    usage: dict[date, DayUsage] = Field(default_factory=dict)
    users: ActiveUsers = Field(default_factory=ActiveUsers)
    seen_ids: dict[date, set[str]] = Field(default_factory=dict)
    billing: BillingState = Field(default_factory=BillingState)
    traits: Traits = Field(default_factory=Traits)
    last: Assessment | None = Field(None, description="The last material assessment.")
    current: Assessment | None = Field(
        None, description="The latest assessment, material or not: what the API shows."
    )
    daily_scores: dict[date, int] = Field(
        default_factory=dict, description="Each day's close: its latest health score."
    )
    daily_tiers: dict[date, Tier] = Field(
        default_factory=dict, description="Each day's close: its latest computed tier."
    )
    drivers: list[Driver] = Field(
        default_factory=list, description="Drivers of the last change that moved the score."
    )
    trend_7d: int | None = None
    trend_30d: int | None = None
    sequence: int = 0
    _usage_totals: UsageTotals | None = PrivateAttr(None)

    def usage_totals(self) -> UsageTotals:
        """Running totals of ``usage``, built on first use and kept in step by the fold."""
        private = self.__pydantic_private__  # read directly: the attribute's lookup is slow
        assert private is not None
        totals: UsageTotals | None = private["_usage_totals"]
        if totals is None:
            totals = private["_usage_totals"] = UsageTotals(self.usage)
        return totals

    def __eq__(self, other: object) -> bool:
        """Equal by what they hold: the running totals are derived from it."""
        return isinstance(other, AccountState) and self.__dict__ == other.__dict__

    def fact(self, name: str) -> Any:
        """The value of a stamped billing fact, or None."""
        stamped = getattr(self.billing, name)
        return stamped[0] if stamped is not None else None

    def trait(self, name: str) -> str | None:
        stamped: tuple[str, Stamp] | None = getattr(self.traits, name)
        return stamped[0] if stamped is not None else None


def apply_events(state: AccountState, events: Iterable[Event], limits: Limits) -> list[Outcome]:
    """Fold events into ``state``; one outcome per event, in order."""
    outcomes = []
    totals = state.usage_totals()
    with state.users.batch(limits) as users:
        for event in events:
            outcome = _admit(state, event, limits)
            if outcome is Outcome.applied:
                _fold(state, event, users, totals, limits)
            outcomes.append(outcome)
    return outcomes


def apply_event(state: AccountState, event: Event, limits: Limits | None = None) -> Outcome:
    return apply_events(state, [event], limits or Limits())[0]


def _admit(state: AccountState, event: Event, limits: Limits) -> Outcome:
    if state.watermark is not None and event.occurred_at < state.watermark - limits.lateness:
        return Outcome.too_late
    ids = state.seen_ids.setdefault(event.occurred_at.date(), set())
    if event.event_id in ids:
        return Outcome.duplicate
    ids.add(event.event_id)
    return Outcome.applied


def _fold(
    state: AccountState, event: Event, users: Any, totals: UsageTotals, limits: Limits
) -> None:
    state.events_applied += 1
    day = event.occurred_at.date()
    state.first_seen = min(state.first_seen, day) if state.first_seen else day
    state.last_event_at = _later(state.last_event_at, event.occurred_at)
    if event.kind is EventKind.usage:
        _fold_usage(state, event, day, users, totals, limits)
    if event.billing is not None:
        _fold_billing(state.billing, event.billing, _stamp(event), day)
    if event.traits is not None:
        stamp = _stamp(event)
        for name in ("name", "owner_csm_email", "owner_csm_slack", "segment"):
            _set_newer(state.traits, name, getattr(event.traits, name), stamp)
    _advance_watermark(state, min(event.occurred_at, event.received_at), totals, limits)


def _fold_usage(
    state: AccountState, event: Event, day: date, users: Any, totals: UsageTotals, limits: Limits
) -> None:
    bucket = state.usage.setdefault(day, DayUsage())
    bucket.events += 1
    totals.add(day)
    feature = event.feature or event.name
    if feature in bucket.features or len(bucket.features) < limits.features_per_day_max:
        bucket.features[feature] = bucket.features.get(feature, 0) + 1
        totals.used((feature,), day)
    if event.user_id is not None:
        users.add(event.user_id, day)
    state.last_usage_at = _later(state.last_usage_at, event.occurred_at)


def _fold_billing(billing: BillingState, fact: Billing, stamp: Stamp, day: date) -> None:
    billing.seen = True
    for name, value in (
        ("mrr_minor", fact.mrr_minor),
        ("currency", fact.currency),
        ("seats", fact.seats),
        ("plan", fact.plan),
        ("status", fact.subscription_status),
        ("started_on", fact.subscription_started_on),
        ("renewal_date", fact.renewal_date),
        ("term_months", fact.term_months),
        ("cancel_at_period_end", fact.cancel_at_period_end),
    ):
        _set_newer(billing, name, value, stamp)
    _set_day(billing.mrr_by_day, day, fact.mrr_minor, stamp)
    _set_day(billing.seats_by_day, day, fact.seats, stamp)
    if fact.payment is not None:
        payment = Payment(outcome=fact.payment, on=day, due_on=fact.invoice_due_on)
        _set_newer(billing, "payment", payment, stamp)
        if fact.payment is PaymentOutcome.failed:
            billing.failed_by_day[day] = billing.failed_by_day.get(day, 0) + 1
        elif fact.payment is PaymentOutcome.paid:
            billing.paid_on = max(billing.paid_on or day, day)


def _set_day(
    history: dict[date, tuple[int, Stamp]], day: date, value: int | None, stamp: Stamp
) -> None:
    if value is not None:
        current = history.get(day)
        if current is None or current[1] < stamp:
            history[day] = (value, stamp)


def _set_newer(target: BaseModel, name: str, value: Any, stamp: Stamp) -> None:
    if value is None:
        return
    current = getattr(target, name)
    if current is None or current[1] < stamp:
        setattr(target, name, (value, stamp))


def _advance_watermark(
    state: AccountState, candidate: datetime, totals: UsageTotals, limits: Limits
) -> None:
    previous = state.watermark
    if previous is not None and candidate <= previous:
        return
    state.watermark = candidate
    if previous is None or candidate.date() != previous.date():
        _forget_old(state, candidate, totals, limits)


def _forget_old(
    state: AccountState, watermark: datetime, totals: UsageTotals, limits: Limits
) -> None:
    """Drop what no window needs and no admissible event can touch again."""
    id_horizon = (watermark - limits.lateness).date()
    drop_through(state.seen_ids, id_horizon - timedelta(days=1))
    usage_horizon = watermark.date() - timedelta(days=limits.retention_days)
    drop_through(state.usage, usage_horizon)
    totals.forget_through(usage_horizon)
    state.users.forget_before(usage_horizon)
    billing_horizon = watermark.date() - timedelta(days=limits.billing_retention_days)
    billing = state.billing
    drop_through(billing.failed_by_day, billing_horizon)
    billing.mrr_by_day = _recent(billing.mrr_by_day, billing_horizon)
    billing.seats_by_day = _recent(billing.seats_by_day, billing_horizon)


def drop_through(by_day: dict[date, Any], horizon: date) -> None:
    """Drop the entries at or before ``horizon``, in place: a day or none, most days."""
    if by_day and min(by_day) <= horizon:
        for day in [d for d in by_day if d <= horizon]:
            del by_day[day]


def _recent(history: dict[date, tuple[int, Stamp]], horizon: date) -> dict[date, tuple[int, Stamp]]:
    """Points after ``horizon``, and the last before it: it still says what held then."""
    older = [d for d in history if d <= horizon]
    if len(older) < 2:  # nothing to drop
        return history
    kept = {d: v for d, v in history.items() if d > horizon}
    kept[max(older)] = history[max(older)]
    return kept


def _stamp(event: Event) -> Stamp:
    return f"{event.occurred_at.strftime(STAMP_FORMAT)}|{event.event_id}"


def _later(current: datetime | None, candidate: datetime) -> datetime:
    return candidate if current is None or candidate > current else current
