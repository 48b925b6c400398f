"""A deterministic SaaS portfolio and its event stream, for benchmarks.

The same seed gives the same accounts and the same events in the same order; only
the time base moves (events end at ``end``, by default now), so a run always looks
recent to the scorer. The portfolio:

- revenue (MRR) is Pareto-distributed (shape 1.16: about 20% of accounts bring 80%
  of revenue); seats grow with revenue;
- each account has users active on a weekly rhythm (weekdays busier), using a few of
  ``FEATURES``;
- some accounts churn (usage declines over the last part of the span, then the
  subscription is canceled), some expand (more seats), some have failed payments.

Events are native Vitals events (``shared.events.Event``), yielded day by day across
all accounts, shuffled within a day.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

FEATURES = tuple(f"feature-{n}" for n in range(12))
PARETO_SHAPE = 1.16
WEEKDAY_ACTIVITY = (1.0, 1.0, 1.0, 1.0, 0.9, 0.25, 0.15)
CHURN_SHARE = 0.05
EXPANSION_SHARE = 0.05
FAILED_PAYMENT_SHARE = 0.03


@dataclass(frozen=True)
class Account:
    account_id: str
    mrr_minor: int
    seats: int
    users: int
    engagement: float
    features: tuple[str, ...]
    churns: bool
    expands: bool
    fails_payment: bool


@dataclass(frozen=True)
class Workload:
    """``accounts`` accounts with about ``events`` events over ``days`` days."""

    accounts: int
    events: int
    days: int = 30
    seed: int = 7

    def portfolio(self) -> list[Account]:
        rng = random.Random(self.seed)
        return [_account(rng, n) for n in range(self.accounts)]

    def stream(self, end: datetime | None = None) -> Iterator[dict[str, object]]:
        """Every event as a JSON-ready dict, in (shuffled) day order."""
        end = end or datetime.now(UTC)
        start = end - timedelta(days=self.days)
        portfolio = self.portfolio()
        rng = random.Random(self.seed + 1)
        ids = random.Random(self.seed + 2)
        usage_per_day = self._usage_per_activity(portfolio, start)
        for account in portfolio:
            yield _billing(account, start, ids, "subscription.created", account.seats)
        for day in range(self.days):
            day_start = start + timedelta(days=day)
            events = [
                event
                for account in portfolio
                for event in _day(account, day, self.days, day_start, usage_per_day, rng, ids)
            ]
            rng.shuffle(events)
            yield from events

    def _usage_per_activity(self, portfolio: list[Account], start: datetime) -> float:
        """Usage events per unit of activity that yield about ``events`` in all."""
        billing = len(portfolio) * (1 + CHURN_SHARE + EXPANSION_SHARE + FAILED_PAYMENT_SHARE)
        weekdays = [
            WEEKDAY_ACTIVITY[(start + timedelta(days=d)).weekday()] for d in range(self.days)
        ]
        decline = [_churn_factor(d, self.days) for d in range(self.days)]
        total = sum(
            a.engagement
            * sum(w * (c if a.churns else 1) for w, c in zip(weekdays, decline, strict=True))
            for a in portfolio
        )
        return max(0.0, self.events - billing) / total if total else 0.0


def _account(rng: random.Random, n: int) -> Account:
    mrr = int(min(5_000_000, 5_000 * rng.paretovariate(PARETO_SHAPE)))
    seats = max(1, int(3 + mrr / 2_000 * rng.uniform(0.5, 1.5)))
    features = tuple(rng.sample(FEATURES, rng.randint(2, len(FEATURES))))
    return Account(
        account_id=f"acct-{n:07d}",
        mrr_minor=mrr,
        seats=seats,
        users=max(1, int(seats * rng.uniform(0.4, 1.1))),
        engagement=rng.uniform(0.2, 1.0),
        features=features,
        churns=rng.random() < CHURN_SHARE,
        expands=rng.random() < EXPANSION_SHARE,
        fails_payment=rng.random() < FAILED_PAYMENT_SHARE,
    )


def _day(
    account: Account,
    day: int,
    days: int,
    day_start: datetime,
    mean_events: float,
    rng: random.Random,
    ids: random.Random,
) -> Iterator[dict[str, object]]:
    activity = WEEKDAY_ACTIVITY[day_start.weekday()] * account.engagement
    if account.churns:
        activity *= _churn_factor(day, days)
        if day == days - 1:
            yield _billing(account, day_start, ids, "subscription.canceled", account.seats)
    if account.expands and day == days // 2:
        yield _billing(account, day_start, ids, "subscription.updated", account.seats * 2)
    if account.fails_payment and day == days // 3:
        yield _billing(account, day_start, ids, "invoice.payment_failed", account.seats)
    count = _poisson(rng, mean_events * activity)
    for _ in range(count):
        at = day_start + timedelta(seconds=rng.randrange(86_400))
        yield {
            "event_id": str(uuid.UUID(int=ids.getrandbits(128), version=4)),
            "account_id": account.account_id,
            "kind": "usage",
            "name": "feature.used",
            "feature": rng.choice(account.features),
            "user_id": f"{account.account_id}-u{rng.randrange(account.users)}",
            "occurred_at": at.isoformat(),
            "received_at": at.isoformat(),
        }


def _churn_factor(day: int, days: int) -> float:
    """A churner's usage: normal for the first 40% of the span, then down to nothing."""
    decline_from = int(days * 0.4)
    if day < decline_from:
        return 1.0
    return max(0.0, 1 - (day - decline_from) / (days - decline_from))


def _billing(
    account: Account, at: datetime, ids: random.Random, name: str, seats: int
) -> dict[str, object]:
    status = {"subscription.canceled": "canceled", "invoice.payment_failed": "past_due"}
    billing: dict[str, object] = {
        "mrr_minor": 0
        if name == "subscription.canceled"
        else account.mrr_minor * seats // account.seats,
        "currency": "EUR",
        "seats": seats,
        "subscription_status": status.get(name, "active"),
    }
    return {
        "event_id": str(uuid.UUID(int=ids.getrandbits(128), version=4)),
        "account_id": account.account_id,
        "kind": "billing",
        "name": name,
        "occurred_at": at.isoformat(),
        "received_at": at.isoformat(),
        "billing": billing,
    }


def _poisson(rng: random.Random, mean: float) -> int:
    """Knuth's method for small means, a rounded normal for large ones."""
    if mean <= 0:
        return 0
    if mean > 30:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def encode(event: dict[str, object]) -> tuple[bytes, bytes]:
    """(key, value) as ingest would publish it.

    The value is copied to a bytes object of its exact size: orjson's result keeps the
    buffer it grew (about 4 KiB), and 5 million of them took 20 GB."""
    return str(event["account_id"]).encode(), memoryview(orjson.dumps(event)).tobytes()


def segment_track(event: dict[str, object]) -> dict[str, object]:
    """A usage event as a Segment ``track`` call, the way analytics libraries send it."""
    return {
        "type": "track",
        "event": event["name"],
        "userId": event["user_id"],
        "messageId": event["event_id"],
        "timestamp": event["occurred_at"],
        "context": {"groupId": event["account_id"]},
        "properties": {"feature": event["feature"]},
    }
