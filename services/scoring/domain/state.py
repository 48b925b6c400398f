"""Per-account state and how events fold into it. Pure: no I/O, no clock.

Everything here is order-independent within the lateness bound: counters add,
sets unite, and "last known" facts are last-writer-wins by (event time, event id),
so the same events in any order give the same state.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from pydantic import BaseModel, Field, PrivateAttr

from services.scoring.domain.assessment import Assessment
from services.scoring.domain.days import ONE_DAY, days_before
from services.scoring.domain.usage import UsageTotals
from services.scoring.domain.users import ActiveUsers, UserAdder
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


class ApplyResult(StrEnum):
    applied = "applied"
    duplicate = "duplicate"
    too_late = "too_late"


@dataclass
class DayUsage:
    """One day's usage. A plain dataclass, not a model (pydantic still validates and
    writes it in the state): the fold counts into it at every usage event."""

    events: int = 0
    features: dict[str, int] = field(default_factory=dict)


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

    # The last known billing facts, each as its value (None: not known yet).
    @property
    def mrr_minor(self) -> int | None:
        return _value(self.billing.mrr_minor)

    @property
    def currency(self) -> str | None:
        return _value(self.billing.currency)

    @property
    def seats(self) -> int | None:
        return _value(self.billing.seats)

    @property
    def plan(self) -> str | None:
        return _value(self.billing.plan)

    @property
    def status(self) -> SubscriptionStatus | None:
        return _value(self.billing.status)

    @property
    def started_on(self) -> date | None:
        return _value(self.billing.started_on)

    @property
    def renewal_date(self) -> date | None:
        return _value(self.billing.renewal_date)

    @property
    def term_months(self) -> int | None:
        return _value(self.billing.term_months)

    @property
    def cancel_at_period_end(self) -> bool | None:
        return _value(self.billing.cancel_at_period_end)

    @property
    def payment(self) -> Payment | None:
        return _value(self.billing.payment)

    def trait(self, name: str) -> str | None:
        stamped: tuple[str, Stamp] | None = getattr(self.traits, name)
        return stamped[0] if stamped is not None else None


V = TypeVar("V")


def _value(stamped: tuple[V, Stamp] | None) -> V | None:
    return stamped[0] if stamped is not None else None


def apply_events(state: AccountState, events: Iterable[Event], limits: Limits) -> list[ApplyResult]:
    """Fold events into ``state``; one outcome per event, in order."""
    outcomes = []
    applied: list[Event] = []
    totals = state.usage_totals()
    watermark = state.watermark  # the batch's, assigned to the state at its end
    with state.users.batch(limits) as users:
        for event in events:
            day = event.occurred_at.date()
            outcome = _admit(state, event, day, watermark, limits)
            if outcome is ApplyResult.applied:
                _fold(state, event, day, users, totals, limits)
                candidate = min(event.occurred_at, event.received_at)
                watermark = _advanced(state, watermark, candidate, totals, limits)
                applied.append(event)
            outcomes.append(outcome)
    if applied:
        _count(state, applied, watermark)
    return outcomes


def apply_event(state: AccountState, event: Event, limits: Limits | None = None) -> ApplyResult:
    return apply_events(state, [event], limits or Limits())[0]


def _admit(
    state: AccountState, event: Event, day: date, watermark: datetime | None, limits: Limits
) -> ApplyResult:
    if watermark is not None and event.occurred_at < watermark - limits.lateness:
        return ApplyResult.too_late
    ids = state.seen_ids.get(day)
    if ids is None:
        ids = state.seen_ids[day] = set()
    elif event.event_id in ids:
        return ApplyResult.duplicate
    ids.add(event.event_id)
    return ApplyResult.applied


# The fold assigns a state's fields only when they change, and the counters, the latest
# times and the watermark once a batch (``_count``): an assignment to a pydantic model
# runs Python code.
def _fold(
    state: AccountState,
    event: Event,
    day: date,
    users: UserAdder,
    totals: UsageTotals,
    limits: Limits,
) -> None:
    if state.first_seen is None or day < state.first_seen:
        state.first_seen = day
    if event.kind is EventKind.usage:
        _fold_usage(state, event, day, users, totals, limits)
    if event.billing is not None:
        _fold_billing(state.billing, event.billing, _stamp(event), day)
    if event.traits is not None:
        stamp = _stamp(event)
        for name in ("name", "owner_csm_email", "owner_csm_slack", "segment"):
            _set_newer(state.traits, name, getattr(event.traits, name), stamp)


def _fold_usage(
    state: AccountState,
    event: Event,
    day: date,
    users: UserAdder,
    totals: UsageTotals,
    limits: Limits,
) -> None:
    bucket = state.usage.get(day)
    if bucket is None:
        bucket = state.usage[day] = DayUsage()
    bucket.events += 1
    totals.add(day)
    feature = event.feature or event.name
    features = bucket.features
    if feature in features or len(features) < limits.features_per_day_max:
        features[feature] = features.get(feature, 0) + 1
        totals.used((feature,), day)
    if event.user_id is not None:
        users.add(event.user_id, day)


def _count(state: AccountState, applied: list[Event], watermark: datetime | None) -> None:
    """The events applied in a batch: their number, the latest of their times, and the
    watermark they moved."""
    if watermark is not state.watermark:
        state.watermark = watermark
    state.events_applied += len(applied)
    latest = max(event.occurred_at for event in applied)
    if state.last_event_at is None or latest > state.last_event_at:
        state.last_event_at = latest
    used = [event.occurred_at for event in applied if event.kind is EventKind.usage]
    latest_use = max(used, default=None)
    if latest_use is not None and (state.last_usage_at is None or latest_use > state.last_usage_at):
        state.last_usage_at = latest_use


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


def _set_newer(target: BaseModel, name: str, value: object, stamp: Stamp) -> None:
    if value is None:
        return
    current = getattr(target, name)
    if current is None or current[1] < stamp:
        setattr(target, name, (value, stamp))


def _advanced(
    state: AccountState,
    watermark: datetime | None,
    candidate: datetime,
    totals: UsageTotals,
    limits: Limits,
) -> datetime:
    """The watermark once ``candidate`` is seen; on a new day, what it leaves behind is
    forgotten."""
    if watermark is not None and candidate <= watermark:
        return watermark
    if watermark is None or candidate.date() != watermark.date():
        _forget_old(state, candidate, totals, limits)
    return candidate


def _forget_old(
    state: AccountState, watermark: datetime, totals: UsageTotals, limits: Limits
) -> None:
    """Drop what no window needs and no admissible event can touch again."""
    id_horizon = (watermark - limits.lateness).date()
    drop_through(state.seen_ids, id_horizon - ONE_DAY)
    today = watermark.date()
    usage_horizon = days_before(today, limits.retention_days)
    for day in totals.forget_through(usage_horizon):  # the totals' days are the usage's
        del state.usage[day]
    state.users.forget_before(usage_horizon)
    billing_horizon = days_before(today, limits.billing_retention_days)
    billing = state.billing
    drop_through(billing.failed_by_day, billing_horizon)
    if (mrr := _recent(billing.mrr_by_day, billing_horizon)) is not billing.mrr_by_day:
        billing.mrr_by_day = mrr
    if (seats := _recent(billing.seats_by_day, billing_horizon)) is not billing.seats_by_day:
        billing.seats_by_day = seats


def drop_through(by_day: dict[date, V], horizon: date) -> None:
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
