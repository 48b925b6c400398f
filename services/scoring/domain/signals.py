"""Measure values from an account's state at a moment: the raw inputs of the scorecard."""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import date, datetime

from services.scoring.domain.assessment import MeasureValue
from services.scoring.domain.days import ONE_DAY, days_before, span
from services.scoring.domain.state import UNRESOLVED, AccountState, Payment
from services.scoring.domain.usage import UsageTotals
from services.scoring.scorecard import Measure, Scorecard, feature_key
from shared.events import SubscriptionStatus

NEW_USAGE_RATIO = 2.0
USAGE_SIGNALS = frozenset(
    {
        "active_users_per_seat",
        "usage_trend",
        "usage_vs_baseline",
        "days_since_last_usage",
        "key_feature_breadth",
    }
)  # usage now after none before: as good as doubling


class Signals:
    """Reads the state as of ``as_of``; each method is one signal of the catalogue.

    One is made for every re-score, so what several measures and risk rules read is
    worked out once, here or on first use, in plain attributes."""

    def __init__(self, state: AccountState, as_of: datetime, card: Scorecard) -> None:
        self.state = state
        self.as_of = as_of
        self.today = as_of.date()
        self.card = card
        self._compared: dict[tuple[int, int], tuple[int, float] | None] = {}
        self._usage: UsageTotals | None = None
        self._users_between: Callable[[date, date], int] | None = None
        start = state.started_on or state.first_seen
        self._age = (self.today - start).days if start is not None else None
        first = state.first_seen
        self._seen_days = (self.today - first).days + 1 if first is not None else 0
        # Onboarding with no usage yet, under a scorecard that does not judge that.
        self._not_started = (
            card.lifecycle.usage_unknown_while_onboarding
            and state.last_usage_at is None
            and not self.judged()
        )

    def value(self, measure: Measure) -> MeasureValue:
        signal = measure.signal
        if self._not_started and signal in USAGE_SIGNALS:
            return None
        window = measure.window
        match signal:
            case "active_users_per_seat":
                return self.active_users_per_seat(window, measure.seats_settle_days)
            case "usage_trend":
                return self.usage_trend(window)
            case "usage_vs_baseline":
                return self.usage_vs_baseline(window)
            case "days_since_last_usage":
                if self.card.lifecycle.usage_unknown_while_onboarding:
                    return self.silent_days()  # no usage seen: silent since first seen
                return self.days_since_last_usage()
            case "key_feature_breadth":
                return self.key_feature_breadth(window)
            case "subscription_status":
                status = self.state.status
                return str(status) if status is not None else None
            case "days_past_due":
                return float(self.days_past_due()) if self.state.billing.seen else None
            case "failed_payments":
                return float(self.failed_payments(window)) if self.state.billing.seen else None
            case "mrr_change":
                return self.mrr_change(window)

    def _since(self, days: int) -> date:
        return days_before(self.today, days)

    def active_users(self, window: int) -> int:
        between = self._users_between
        if between is None:
            between = self._users_between = self.state.users.counter()
        return between(self._since(window), self.today)

    def active_users_share(self, recent: int, reference: int, minimum: int) -> float | None:
        """Users active in the last ``recent`` days over those active in the last
        ``reference``; None with fewer than ``minimum`` of them. Each user's last active
        day is all it needs, so the order events arrived in does not matter."""
        known = self.active_users(reference)
        if known < minimum:
            return None
        return min(1.0, self.active_users(recent) / known)

    def active_users_per_seat(self, window: int, settle_days: int | None = None) -> float | None:
        seats: int | None = self.state.seats
        if settle_days is not None and seats:
            before = self.seats_at(self._since(settle_days))
            seats = min(seats, before) if before else seats
        if not seats:
            return None
        return round(self.active_users(window) / seats, 4)

    def seats_at(self, day: date) -> int | None:
        points = [(d, v) for d, (v, _) in self.state.billing.seats_by_day.items() if d <= day]
        return max(points)[1] if points else None

    def seen_days(self) -> int:
        """Days the account has been seen on, counting its first (0: never)."""
        return self._seen_days

    def age_days(self) -> int | None:
        """Days since the subscription started, or since the account was first seen."""
        return self._age

    def judged(self) -> bool:
        """Past onboarding: old enough for silence and low usage to mean something."""
        age = self._age
        return age is not None and age >= self.card.lifecycle.onboarding_days

    def usage_vs_baseline(self, window: int) -> float | None:
        """Mean daily usage of the last ``window`` days over that of the baseline days
        before them; None without enough history."""
        compared = self.usage_against_baseline(window)
        if compared is None:
            return None
        recent, expected = compared
        return round(min(NEW_USAGE_RATIO, recent / expected), 4)

    def usage_against_baseline(self, window: int, days_ago: int = 0) -> tuple[int, float] | None:
        """(usage in the window, usage the baseline expects in it), or None; kept, for
        measures and several risk rules ask for the same ones."""
        key = (window, days_ago)
        if key not in self._compared:
            self._compared[key] = self._against_baseline(window, days_ago)
        return self._compared[key]

    def _against_baseline(self, window: int, days_ago: int) -> tuple[int, float] | None:
        baseline = self.card.baseline
        until = days_before(self.today, days_ago)
        split = days_before(until, window)
        first = self.state.first_seen
        if first is None:
            return None
        start = max(first - ONE_DAY, days_before(split, baseline.days))
        history = (split - start).days
        if history < baseline.min_history_days:
            return None
        expected = self.events_between(start, split) / history * window
        if expected == 0:
            return None
        return self.events_between(split, until), expected

    def events_between(self, after: date, until: date) -> int:
        """Usage events on the days in (``after``, ``until``]."""
        return self._totals().between(after, until)

    def _totals(self) -> UsageTotals:
        usage = self._usage  # a private attribute of the state: slow to read each time
        if usage is None:
            usage = self._usage = self.state.usage_totals()
        return usage

    def usage_trend(self, window: int) -> float | None:
        if self.state.last_usage_at is None:
            return None
        recent = self.events_between(self._since(window), self.today)
        before = self.events_between(self._since(2 * window), self._since(window))
        if before == 0:
            return NEW_USAGE_RATIO if recent else 0.0
        return round(min(NEW_USAGE_RATIO, recent / before), 4)

    def days_since_last_usage(self) -> float | None:
        last = self.state.last_usage_at
        if last is None:
            return None
        return round(max(0.0, (self.as_of - last).total_seconds() / 86400), 2)

    def silent_days(self) -> float:
        """Days without usage; an account that never used the product counts from day one."""
        since = self.days_since_last_usage()
        if since is not None:
            return since
        return float(max(0, self._seen_days - 1))  # 0 for a first seen today, or later

    def key_feature_breadth(self, window: int) -> float | None:
        keys = self.card.key_feature_keys
        if not keys or self.state.last_usage_at is None:
            return None
        after = self._since(window)
        names: Collection[str] | None = self._totals().names_used(after, self.today)
        if names is None:
            names = self._names_used(after)
        return round(len(keys.intersection(map(feature_key, names))) / len(keys), 4)

    def _names_used(self, after: date) -> set[str]:
        """The raw names used in (``after``, today], from the days themselves."""
        names: set[str] = set()
        for day, counts in self.state.usage.items():
            if after < day <= self.today:
                names.update(counts.features)
        return names

    def payment_unresolved_days(self) -> int:
        """Days since the first failure of the payment that is still unpaid (0: none)."""
        if not self.payment_unresolved():
            return 0
        billing = self.state.billing
        paid = billing.paid_on
        failures = [d for d in billing.failed_by_day if paid is None or d > paid]
        payment = self.state.payment
        assert payment is not None  # payment_unresolved said so
        first = min(failures, default=payment.on)
        return max(0, (self.today - min(first, payment.on)).days)

    def payment_unresolved(self) -> bool:
        payment = self.state.payment
        return payment is not None and payment.outcome in UNRESOLVED

    def days_past_due(self) -> int:
        payment: Payment | None = self.state.payment
        if payment is None or payment.outcome not in UNRESOLVED:
            return 0
        return max(0, (self.today - (payment.due_on or payment.on)).days)

    def failed_payments(self, window: int) -> int:
        after = self._since(window)
        return sum(
            n for day, n in self.state.billing.failed_by_day.items() if after < day <= self.today
        )

    def mrr_at(self, day: date) -> int | None:
        points = [(d, v) for d, (v, _) in self.state.billing.mrr_by_day.items() if d <= day]
        return max(points)[1] if points else None

    def mrr_change(self, window: int) -> float | None:
        now: int | None = self.state.mrr_minor
        then = self.mrr_at(self._since(window))
        if now is None or not then:
            return None
        return round((now - then) / then, 4)

    def cancellation_scheduled(self) -> bool:
        scheduled = bool(self.state.cancel_at_period_end)
        return scheduled and self.state.status is not SubscriptionStatus.canceled

    def stale(self) -> bool:
        last = self.state.last_event_at
        return last is None or self.as_of - last > span(self.card.freshness.stale_after_days)
